//! Run-time choice of the compute device: CPU (flex or ndarray) or GPU through wgpu.

use std::sync::OnceLock;

use burn::prelude::*;

/// Which device a command runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceChoice {
    /// The fastest CPU backend (see [`cpu_device`]).
    Cpu,
    /// burn's Flex backend (pure Rust CPU).
    Flex,
    /// burn's NdArray backend (CPU; deprecated upstream, kept for comparison).
    Ndarray,
    /// wgpu (Vulkan, Metal, DX12 or GL); an error when no adapter exists.
    Gpu,
    /// wgpu when an adapter exists, else the CPU.
    Auto,
}

/// The CPU backend this project uses by default: Flex, measured faster than NdArray by
/// `raagr2-lab bench` (see docs/benchmarks.md).
pub fn cpu_device() -> Device {
    Device::flex()
}

/// Whether `device` (autodiff or not) is the Flex CPU backend.
pub fn is_flex(device: &Device) -> bool {
    device.clone().without_autodiff() == Device::flex()
}

#[allow(deprecated)] // NdArray stays selectable so `bench` can compare it against Flex.
pub fn ndarray_device() -> Device {
    Device::ndarray()
}

/// The wgpu device on the default adapter once it has shown that it sums large tensors right
/// (see [`check_reductions`]), or why it cannot be used. The answer is kept: every later caller
/// (the app's probe, then its fine-tune) gets the same one.
pub fn gpu_device() -> Result<Device, String> {
    static CHECKED: OnceLock<Result<Device, String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let device = gpu_device_unchecked()?;
            check_reductions(&device)?;
            Ok(device)
        })
        .clone()
}

/// The wgpu device on the default adapter without the reduction check (tests of the kernels
/// themselves). wgpu's runtime registers once per process (a second `init` fails with "Service
/// already initialized"), so the first answer is kept.
pub fn gpu_device_unchecked() -> Result<Device, String> {
    static GPU: OnceLock<Result<Device, String>> = OnceLock::new();
    GPU.get_or_init(|| {
        Device::wgpu_options()
            .init()
            .map_err(|e| format!("no wgpu adapter: {e}"))
    })
    .clone()
}

/// Rows and length of the reduction check: as batch norm's statistics over 8 x 128 x 128 pixels.
const REDUCTION_CHECK: [usize; 2] = [8, 128 * 128 * 8];

/// Sums rows of ones on `device` and compares them with their exact length. Mesa's lavapipe
/// (wgpu 29, cubecl 0.11) returns zeros for some rows once a reduction passes 2^18 elements,
/// which turns training-mode batch norm and the loss into garbage (losses of 1e15), so such an
/// adapter is refused with this reason rather than trusted.
fn check_reductions(device: &Device) -> Result<(), String> {
    let [rows, len] = REDUCTION_CHECK;
    let sums = Tensor::<2>::ones([rows, len], device)
        .sum_dim(1)
        .into_data()
        .try_to_vec_as::<f32>()
        .map_err(|e| format!("reading the reduction check back: {e:?}"))?;
    match sums.iter().find(|&&s| s != len as f32) {
        None => Ok(()),
        Some(wrong) => Err(format!(
            "{} sums a row of {len} ones to {wrong}: its large reductions are wrong, so \
             training and scores there would be too (use the CPU)",
            adapter_name(device)
        )),
    }
}

/// Resolves a choice to a device and a human label naming the adapter, e.g. "cpu (flex)",
/// "gpu (wgpu: NVIDIA H200)".
pub fn resolve(choice: DeviceChoice) -> Result<(Device, String), String> {
    match choice {
        DeviceChoice::Cpu | DeviceChoice::Flex => Ok((cpu_device(), "cpu (flex)".into())),
        DeviceChoice::Ndarray => Ok((ndarray_device(), "cpu (ndarray)".into())),
        DeviceChoice::Gpu => gpu_device().map(|d| {
            let label = gpu_label(&d);
            (d, label)
        }),
        DeviceChoice::Auto => Ok(match gpu_device() {
            Ok(d) => {
                let label = gpu_label(&d);
                (d, label)
            }
            Err(_) => (cpu_device(), "cpu (flex)".into()),
        }),
    }
}

/// The adapter's own name (e.g. "NVIDIA H200"), marked when it is no card but a software
/// rasteriser such as Mesa's llvmpipe, so a user sees that such a "GPU" computes on the CPU.
fn adapter_name(device: &Device) -> String {
    match device.identity() {
        Some(identity) if identity.physical.is_none() => {
            format!("{} [software, on the CPU]", identity.name)
        }
        Some(identity) => identity.name,
        None => "wgpu adapter".into(),
    }
}

fn gpu_label(device: &Device) -> String {
    format!("gpu (wgpu: {})", adapter_name(device))
}

/// The GPU adapter's name, or why none can be used; for the app's device chooser.
pub fn probe_gpu() -> Result<String, String> {
    gpu_device().map(|d| adapter_name(&d))
}
