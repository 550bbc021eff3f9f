//! Run-time choice of the compute device: CPU (flex or ndarray) or GPU through wgpu.

use burn::prelude::*;

/// Which device a command runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
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
/// `raagr2-lab bench` (see README).
pub fn cpu_device() -> Device {
    Device::flex()
}

#[allow(deprecated)] // NdArray stays selectable so `bench` can compare it against Flex.
pub fn ndarray_device() -> Device {
    Device::ndarray()
}

/// Initialises wgpu on the default adapter, or says why not.
pub fn gpu_device() -> Result<Device, String> {
    Device::wgpu_options()
        .init()
        .map_err(|e| format!("no wgpu adapter: {e}"))
}

/// Resolves a choice to a device and a human label (e.g. "cpu (flex)", "gpu (wgpu)").
pub fn resolve(choice: DeviceChoice) -> Result<(Device, &'static str), String> {
    match choice {
        DeviceChoice::Cpu | DeviceChoice::Flex => Ok((cpu_device(), "cpu (flex)")),
        DeviceChoice::Ndarray => Ok((ndarray_device(), "cpu (ndarray)")),
        DeviceChoice::Gpu => gpu_device().map(|d| (d, "gpu (wgpu)")),
        DeviceChoice::Auto => Ok(match gpu_device() {
            Ok(d) => (d, "gpu (wgpu)"),
            Err(_) => (cpu_device(), "cpu (flex)"),
        }),
    }
}
