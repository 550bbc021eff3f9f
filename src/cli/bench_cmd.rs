//! `bench`: forward and training-step timings per backend, optionally beside PyTorch.

use anyhow::{Result, bail};
use clap::Args;

use super::model_args::ModelArgs;
use super::{check_size, print_json};
use crate::backend::DeviceChoice;
use crate::bench::{self, BenchOptions};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Input height and width (multiples of 16).
    #[arg(long, default_value_t = 192)]
    pub size: usize,
    /// Timed runs per measurement (after a first call, which is reported apart).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Batch sizes of the timed eval forwards.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub forward_batches: Vec<usize>,
    /// Batch size of the timed training step; 0 skips training.
    #[arg(long, default_value_t = 2)]
    pub train_batch: usize,
    /// Backends to time; `all` = flex, ndarray and gpu; `none` (with --load-case) times loading
    /// only.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    pub backends: Vec<String>,
    /// Also time the same network in PyTorch (tools/torch_bench.py, run with `python3` or
    /// $RAAGR2_PYTHON) in this run: on the CPU next to CPU backends (with ONNX Runtime's forward
    /// too), on CUDA next to `gpu`.
    #[arg(long)]
    pub against_pytorch: bool,
    /// Also time loading this BraTS case folder (four modalities and the segmentation); with
    /// --against-pytorch, beside nibabel (tools/nibabel_load.py) in the same run.
    #[arg(long)]
    pub load_case: Option<std::path::PathBuf>,
    /// Also time ONNX Runtime's CPU forward (tools/onnxruntime_bench.py, run with `python3` or
    /// $RAAGR2_PYTHON) in this run: of FILE, or without one of the benched network as
    /// `export --onnx` writes it, in fp32, fp16 and int8.
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    pub onnx: Option<Option<std::path::PathBuf>>,
    /// CPU threads for PyTorch and ONNX Runtime (default: all cores, as burn's CPU backends
    /// use).
    #[arg(long)]
    pub pytorch_threads: Option<usize>,
    /// Time the forward with each batch norm as a layer of its own (as training runs it)
    /// instead of folded into its convolution (as inference runs it): what folding gives.
    #[arg(long)]
    pub unfolded_norms: bool,
    /// Time the folded forward with each convolution's bias, activations, residual adds and
    /// input concatenation as separate operations instead of in the fused CPU kernel: what the
    /// fusion gives.
    #[arg(long)]
    pub unfused: bool,
    /// Also time the network with this share of every channel group removed (structured, L2
    /// filter norms; 0.5 removes half), forward only, on the CPU; with --against-pytorch beside
    /// PyTorch and ONNX Runtime on the same pruned network. Reports each one's speedup over
    /// its dense forward and that speedup per MAC cut.
    #[arg(long, value_name = "RATIO")]
    pub pruned: Option<f64>,
    /// Time only the app's filter and attention views instead (send to answer through the
    /// app's worker on the default case; --runs requests of each kind).
    #[arg(long)]
    pub views: bool,
    #[arg(long)]
    pub json: bool,
}

fn parse_backends(names: &[String]) -> Result<Vec<DeviceChoice>> {
    let mut out = Vec::new();
    for name in names {
        match name.as_str() {
            "all" => out.extend([DeviceChoice::Flex, DeviceChoice::Ndarray, DeviceChoice::Gpu]),
            "none" => {}
            "cpu" | "flex" => out.push(DeviceChoice::Flex),
            "ndarray" => out.push(DeviceChoice::Ndarray),
            "gpu" | "wgpu" => out.push(DeviceChoice::Gpu),
            other => bail!("unknown backend {other:?}: use flex, ndarray, gpu, all or none"),
        }
    }
    out.dedup();
    Ok(out)
}

pub fn bench(args: BenchArgs) -> Result<()> {
    check_size("--size", args.size)?;
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if args.views {
        let timings = bench::views::time_views(args.runs)?;
        if args.json {
            return print_json(&timings);
        }
        print!("{}", bench::views::render_views(&timings));
        return Ok(());
    }
    if args.forward_batches.contains(&0) {
        bail!("--forward-batches takes batch sizes of at least 1");
    }
    if let Some(case) = &args.load_case {
        // A case that cannot be read is bad input, not a row of timings.
        crate::data::brats::load_case(case, None)?;
    }
    let onnx = match args.onnx {
        None => None,
        Some(None) => Some(bench::OnnxPeer::OwnExport),
        Some(Some(path)) => {
            // A missing graph is bad input, not a row of timings.
            std::fs::metadata(&path)
                .map_err(|e| anyhow::anyhow!("--onnx {}: {e}", path.display()))?;
            Some(bench::OnnxPeer::File(path))
        }
    };
    if let Some(ratio) = args.pruned {
        crate::prune::check_ratio("--pruned", ratio)?;
    }
    let checkpoint = args.model.checkpoint()?;
    let backends = parse_backends(&args.backends)?;
    let mut pytorch = Vec::new();
    if args.against_pytorch {
        if backends.iter().any(|b| *b != DeviceChoice::Gpu) {
            pytorch.push(bench::PytorchDevice::Cpu);
        }
        if backends.contains(&DeviceChoice::Gpu) {
            pytorch.push(bench::PytorchDevice::Cuda);
        }
    }
    let options = BenchOptions {
        config: checkpoint.config.clone(),
        height: args.size,
        width: args.size,
        runs: args.runs,
        forward_batches: args.forward_batches,
        train_batch: args.train_batch,
        fold_norms: !args.unfolded_norms,
        fused: !args.unfused,
        pruned: args.pruned,
        backends,
        pytorch,
        pytorch_threads: args.pytorch_threads,
        onnx,
        load_case: args.load_case,
        load_against_nibabel: args.against_pytorch,
    };
    let report = bench::run_bench(&options, |step| eprintln!("bench: {step}"));
    if args.json {
        return print_json(&report);
    }
    print!("{}", bench::render(&report));
    Ok(())
}
