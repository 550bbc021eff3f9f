//! `classify cka` and `classify distill`: layer similarity of classifiers, and students trained
//! with and without a teacher.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;

use super::{ArchOptions, DataOptions, SgdOptions};
use crate::analysis::cka::Kernel;
use crate::analysis::similarity::{SimilarityMatrix, pooled_features, similarity_of};
use crate::backend;
use crate::classify::images::ImageSet;
use crate::classify::train::{self, Sources, Teacher};
use crate::classify::{ClassifierCheckpoint, ClassifierConfig};
use crate::cli::cka_cmd::{KernelKind, csv as cka_csv, write_matrix};
use crate::cli::print_json;
use crate::cli::train_cmd::TrainProgress;
use crate::cli::train_cmd::install_ctrl_c;
use crate::metrics::mean_and_sd;
use crate::train::StopReason;

#[derive(Args, Debug)]
pub struct DistillArgs {
    /// The teacher checkpoint (e.g. a pruned VGG16).
    #[arg(long)]
    pub teacher: PathBuf,
    #[command(flatten)]
    pub data: DataOptions,
    /// The student's architecture.
    #[command(flatten)]
    pub arch: ArchOptions,
    /// Weight of the teacher's term, in [0, 1].
    #[arg(long, default_value_t = 0.9)]
    pub alpha: f64,
    /// Softening temperature.
    #[arg(long, default_value_t = 4.0)]
    pub temperature: f64,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Every seed trains one student with the teacher and one without, from the same start.
    #[arg(long, value_delimiter = ',', default_values_t = [0, 1, 2])]
    pub seeds: Vec<u64>,
    #[command(flatten)]
    pub sgd: SgdOptions,
    /// Test images the CKA with the teacher runs on.
    #[arg(long, default_value_t = 512)]
    pub cka_images: usize,
    /// Students go to `<output>.{distilled,plain}.seed<N>.safetensors`, the summary to
    /// `<output>.json` and `<output>.csv`, the CKA with the teacher (first seed) to
    /// `<output>.{distilled,plain}.cka.csv` and `.png`.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ClassifyCkaArgs {
    /// Model A (rows).
    pub model: PathBuf,
    /// Model B (columns); model A itself when omitted.
    #[arg(long)]
    pub other: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataOptions,
    #[arg(long, value_enum, default_value_t = KernelKind::Linear)]
    pub kernel: KernelKind,
    /// RBF width as a multiple of the median distance between examples.
    #[arg(long, default_value_t = 0.5)]
    pub bandwidth: f64,
    /// Test images compared (a seeded choice).
    #[arg(long, default_value_t = 512)]
    pub images: usize,
    /// Images per minibatch of the unbiased HSIC (at least 4).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Where the CSV matrix goes; the PNG heatmap goes beside it.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
}

/// Layer x layer CKA of two classifiers on up to `images` test images (seeded choice) in
/// minibatches of `batch`.
fn layer_similarity(
    a: &ClassifierCheckpoint,
    b: &ClassifierCheckpoint,
    test: &ImageSet,
    images: usize,
    batch: usize,
    kernel: Kernel,
) -> Result<SimilarityMatrix> {
    let device = backend::cpu_device();
    let (model_a, model_b) = (a.build(&device)?, b.build(&device)?);
    let mut order = crate::util::batches::epoch_batches(test.len(), batch, true, 0);
    order.truncate(images.min(test.len()) / batch);
    if order.is_empty() {
        bail!(
            "the test split has {} images, fewer than one minibatch of {batch}",
            test.len()
        );
    }
    let batches = order.iter().map(|i| train::batch(test, i, None, &device).0);
    Ok(similarity_of(
        |x| pooled_features(model_a.layer_outputs(x)),
        |x| pooled_features(model_b.layer_outputs(x)),
        batches,
        kernel,
    ))
}

pub(super) fn cka(args: ClassifyCkaArgs) -> Result<()> {
    if args.batch < 4 || args.images < args.batch {
        bail!(
            "--batch must be at least 4 (the unbiased HSIC needs 4 examples) and --images ({}) \
             at least --batch ({})",
            args.images,
            args.batch
        );
    }
    let a = ClassifierCheckpoint::load(&args.model)?;
    let b = match &args.other {
        Some(path) => ClassifierCheckpoint::load(path)?,
        None => a.clone(),
    };
    let data = args.data.open()?;
    let device = backend::cpu_device();
    let (model_a, model_b) = (a.build(&device)?, b.build(&device)?);
    let mut order = crate::util::batches::epoch_batches(data.test.len(), args.batch, true, 0);
    order.truncate(args.images.min(data.test.len()) / args.batch);
    if order.is_empty() {
        bail!(
            "the test split has {} images, fewer than one minibatch of {}",
            data.test.len(),
            args.batch
        );
    }
    let batches = order
        .iter()
        .map(|i| train::batch(&data.test, i, None, &device).0);
    let matrix = similarity_of(
        |x| pooled_features(model_a.layer_outputs(x)),
        |x| pooled_features(model_b.layer_outputs(x)),
        batches,
        args.kernel.kernel(args.bandwidth),
    );
    let stem = |p: &Path| {
        p.file_stem()
            .map_or(String::new(), |s| s.to_string_lossy().into_owned())
    };
    let other = args.other.as_deref().unwrap_or(&args.model);
    let title = format!(
        "{} CKA: {} (rows) vs {}",
        args.kernel.name(),
        stem(&args.model),
        stem(other)
    );
    write_matrix(&args.output, &title, &matrix, args.json)
}

/// One student of `classify distill`.
#[derive(Debug, Clone, Serialize)]
struct StudentRun {
    seed: u64,
    with_teacher: bool,
    top1: f64,
    balanced_accuracy: f64,
    checkpoint: PathBuf,
}

#[derive(Serialize)]
struct DistillReport {
    teacher: PathBuf,
    teacher_top1: f64,
    student: ClassifierConfig,
    alpha: f64,
    temperature: f64,
    epochs: usize,
    distilled_top1_mean: f64,
    distilled_top1_sd: Option<f64>,
    plain_top1_mean: f64,
    plain_top1_sd: Option<f64>,
    runs: Vec<StudentRun>,
    /// CKA of each first-seed student's layers (rows) with the teacher's (columns).
    cka_distilled: SimilarityMatrix,
    cka_plain: SimilarityMatrix,
}

pub(super) fn distill(args: DistillArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.alpha) || args.temperature.is_nan() || args.temperature <= 0.0 {
        bail!(
            "--alpha {} must be in [0, 1] and --temperature {} positive",
            args.alpha,
            args.temperature
        );
    }
    if args.seeds.is_empty() {
        bail!("--seeds needs at least one seed");
    }
    let teacher_checkpoint = ClassifierCheckpoint::load(&args.teacher)?;
    let data = args.data.open()?;
    if teacher_checkpoint.config.classes() != data.class_names.len() {
        bail!(
            "{}: the teacher has {} classes, the data {}",
            args.teacher.display(),
            teacher_checkpoint.config.classes(),
            data.class_names.len()
        );
    }
    let config = args.arch.config(data.class_names.len())?;
    let (device, label) = backend::resolve(args.sgd.device).map_err(anyhow::Error::msg)?;
    eprintln!("device: {label}");
    let teacher = Teacher {
        model: teacher_checkpoint.build(&device)?,
        alpha: args.alpha,
        temperature: args.temperature,
    };
    let classes = config.classes();
    let teacher_top1 = train::evaluate(&teacher.model, &data.test, classes, 128, &device).top1;
    eprintln!("teacher top-1 {teacher_top1:.3}");
    let cancel = install_ctrl_c();
    let mut runs = Vec::new();
    let mut first_students = Vec::new();
    for &seed in &args.seeds {
        for with_teacher in [true, false] {
            // Both arms of a seed start from the same weights and see the same batches.
            device.seed(seed);
            let mut student = ClassifierCheckpoint::from_model(&config, &config.init(&device));
            let arm = if with_teacher { "distilled" } else { "plain" };
            let path = PathBuf::from(format!(
                "{}.{arm}.seed{seed}.safetensors",
                args.output.display()
            ));
            let sources = Sources {
                train: &data.train,
                test: None,
                teacher: with_teacher.then_some(&teacher),
            };
            let settings = args.sgd.settings(args.epochs, seed);
            let progress = TrainProgress::new();
            let stop = train::train(
                &mut student,
                sources,
                &settings,
                &device,
                Some(&path),
                &cancel,
                |e| progress.show(&e),
            )?;
            progress.finish();
            if stop == StopReason::Cancelled {
                bail!("cancelled; the students finished so far are kept");
            }
            let model = student.build(&device)?;
            let e = train::evaluate(&model, &data.test, classes, 128, &device);
            eprintln!("seed {seed} {arm}: top-1 {:.3}", e.top1);
            runs.push(StudentRun {
                seed,
                with_teacher,
                top1: e.top1,
                balanced_accuracy: e.balanced_accuracy,
                checkpoint: path,
            });
            if seed == args.seeds[0] {
                first_students.push(student);
            }
        }
    }
    let kernel = Kernel::Linear;
    let batch = 64.min(args.cka_images.max(4));
    let cka_of = |s: &ClassifierCheckpoint| {
        layer_similarity(
            s,
            &teacher_checkpoint,
            &data.test,
            args.cka_images,
            batch,
            kernel,
        )
    };
    let (cka_distilled, cka_plain) = (cka_of(&first_students[0])?, cka_of(&first_students[1])?);
    let top1 = |with: bool| {
        let values: Vec<f64> = runs
            .iter()
            .filter(|r| r.with_teacher == with)
            .map(|r| r.top1)
            .collect();
        mean_and_sd(&values)
    };
    let ((dm, dsd), (pm, psd)) = (top1(true), top1(false));
    let report = DistillReport {
        teacher: args.teacher.clone(),
        teacher_top1,
        student: config,
        alpha: args.alpha,
        temperature: args.temperature,
        epochs: args.epochs,
        distilled_top1_mean: dm,
        distilled_top1_sd: dsd,
        plain_top1_mean: pm,
        plain_top1_sd: psd,
        runs,
        cka_distilled,
        cka_plain,
    };
    write_distill(&args.output, &report)?;
    if args.json {
        return print_json(&report);
    }
    let sd = |v: Option<f64>| v.map(|v| format!(" ± {v:.3}")).unwrap_or_default();
    println!(
        "teacher {} top-1 {:.3}; students ({} epochs, alpha {}, T {}), mean over seeds {:?}:\n  \
         with the teacher    top-1 {:.3}{}\n  without the teacher top-1 {:.3}{}",
        args.teacher.display(),
        teacher_top1,
        args.epochs,
        args.alpha,
        args.temperature,
        args.seeds,
        dm,
        sd(dsd),
        pm,
        sd(psd)
    );
    println!("same-depth CKA with the teacher (first seed), student layer: distilled / plain");
    for (r, name) in report.cka_distilled.rows.iter().enumerate() {
        let best = |m: &SimilarityMatrix| m.values[r].iter().cloned().fold(f64::MIN, f64::max);
        println!(
            "  {name:<12} best match {:.2} / {:.2}",
            best(&report.cka_distilled),
            best(&report.cka_plain)
        );
    }
    Ok(())
}

/// `<output>.json`, `<output>.csv` (one row per student) and the two CKA matrices as CSV + PNG.
fn write_distill(output: &Path, report: &DistillReport) -> Result<()> {
    let with = |ext: &str| PathBuf::from(format!("{}.{ext}", output.display()));
    let mut csv = String::from("seed,with_teacher,top1,balanced_accuracy\n");
    for r in &report.runs {
        csv += &format!(
            "{},{},{:.6},{:.6}\n",
            r.seed, r.with_teacher, r.top1, r.balanced_accuracy
        );
    }
    for (path, bytes) in [
        (with("csv"), csv.into_bytes()),
        (with("json"), serde_json::to_vec_pretty(report)?),
    ] {
        crate::atomic::write_bytes(&path, &bytes)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    for (arm, matrix) in [
        ("distilled", &report.cka_distilled),
        ("plain", &report.cka_plain),
    ] {
        let csv_path = with(&format!("{arm}.cka.csv"));
        crate::atomic::write_bytes(&csv_path, cka_csv(matrix).as_bytes())
            .with_context(|| format!("writing {}", csv_path.display()))?;
        let title = format!("linear CKA: {arm} student (rows) vs teacher");
        crate::plot::write_heatmap_png(
            &csv_path.with_extension("png"),
            &title,
            &matrix.rows,
            &matrix.columns,
            &matrix.values,
        )?;
    }
    Ok(())
}
