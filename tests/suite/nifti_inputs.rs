//! Reading NIfTI and BraTS folders: every datatype, scaling, both namings, and each bad input
//! with an error that names the file and the problem.

use crate::common;

use std::path::Path;

use ndarray::{Array3, Array4};
use nifti::writer::WriterOptions;
use raagr2_lab::data::synth::{SynthOptions, generate_case, synthetic_header, write_case};
use raagr2_lab::data::{LabelConvention, load_case, read_volume};

fn grid() -> Array3<f64> {
    Array3::from_shape_fn((6, 5, 4), |(x, y, z)| (x + 10 * y + 100 * z) as f64)
}

fn write<A: nifti::DataElement + bytemuck::Pod>(path: &Path, data: &Array3<A>) {
    let header = synthetic_header([6, 5, 4], 1.5);
    WriterOptions::new(path)
        .reference_header(&header)
        .write_nifti(data)
        .unwrap();
}

#[test]
fn every_datatype_loads_with_values_in_x_fastest_order() {
    let dir = common::scratch_dir("datatypes");
    let expected: Vec<f32> = (0..4)
        .flat_map(|z| (0..5).flat_map(move |y| (0..6).map(move |x| (x + 10 * y + 100 * z) as f32)))
        .collect();
    let g = grid();
    type Writer<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Writer)> = vec![
        (
            "u8.nii",
            Box::new(|p: &Path| write(p, &g.mapv(|v| (v as u32 % 256) as u8))),
        ),
        (
            "i16.nii.gz",
            Box::new(|p: &Path| write(p, &g.mapv(|v| v as i16))),
        ),
        (
            "i32.nii",
            Box::new(|p: &Path| write(p, &g.mapv(|v| v as i32))),
        ),
        (
            "f32.nii.gz",
            Box::new(|p: &Path| write(p, &g.mapv(|v| v as f32))),
        ),
        ("f64.nii", Box::new(|p: &Path| write(p, &g))),
    ];
    for (name, writer) in cases {
        let path = dir.join(name);
        writer(&path);
        let volume = read_volume(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(volume.dims, [6, 5, 4], "{name}");
        assert_eq!(volume.spacing_mm, [1.5; 3], "{name}");
        let want: Vec<f32> = if name.starts_with("u8") {
            expected.iter().map(|v| (*v as u32 % 256) as f32).collect()
        } else {
            expected.clone()
        };
        assert_eq!(volume.data, want, "{name}");
        // BraTS's orientation from the synthetic header: x flipped, y flipped with its origin.
        let affine = volume.affine();
        assert_eq!(
            (affine[0][0], affine[1][1], affine[1][3]),
            (-1.5, -1.5, 6.0),
            "{name}: affine kept"
        );
    }
}

#[test]
fn scaling_slope_and_intercept_are_applied() {
    let dir = common::scratch_dir("scaling");
    let path = dir.join("scaled.nii");
    write(&path, &grid().mapv(|v| v as i16));
    // Patch scl_slope (offset 112) and scl_inter (offset 116) of the uncompressed header.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[112..116].copy_from_slice(&2.0f32.to_le_bytes());
    bytes[116..120].copy_from_slice(&(-3.0f32).to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let volume = read_volume(&path).unwrap();
    assert_eq!(volume.data[1], 2.0 * 1.0 - 3.0);
    assert_eq!(volume.data[6], 2.0 * 10.0 - 3.0);
}

fn error_of(path: &Path) -> String {
    read_volume(path).unwrap_err().to_string()
}

#[test]
fn bad_volumes_are_refused_naming_file_and_problem() {
    let dir = common::scratch_dir("bad-volumes");

    let missing = dir.join("absent.nii.gz");
    let e = error_of(&missing);
    assert!(
        e.contains("absent.nii.gz") && e.contains("not found"),
        "{e}"
    );

    let text = dir.join("notes.nii");
    std::fs::write(
        &text,
        "this is not an MRI volume, just some text long enough to fill a header. ".repeat(10),
    )
    .unwrap();
    let e = error_of(&text);
    assert!(e.contains("notes.nii") && e.contains("not a NIfTI"), "{e}");

    let full = dir.join("full.nii.gz");
    write(&full, &grid().mapv(|v| v as f32));
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.join("cut.nii.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = error_of(&cut);
    assert!(e.contains("cut.nii.gz") && e.contains("truncated"), "{e}");

    let four_d = dir.join("four_d.nii");
    let header = synthetic_header([6, 5, 4], 1.0);
    WriterOptions::new(&four_d)
        .reference_header(&header)
        .write_nifti(&Array4::<f32>::zeros((6, 5, 4, 2)))
        .unwrap();
    let e = error_of(&four_d);
    assert!(
        e.contains("four_d.nii") && e.contains("4-D") && e.contains("only 3-D"),
        "{e}"
    );

    let flat = dir.join("flat.nii");
    write(&flat, &Array3::<f32>::zeros((6, 5, 1)));
    let e = error_of(&flat);
    assert!(
        e.contains("flat.nii") && e.contains("3-D volume is needed"),
        "{e}"
    );

    let nan = dir.join("nan.nii.gz");
    let mut values = grid().mapv(|v| v as f32);
    values[[2, 1, 3]] = f32::NAN;
    values[[0, 0, 0]] = f32::INFINITY;
    write(&nan, &values);
    let e = error_of(&nan);
    assert!(
        e.contains("nan.nii.gz") && e.contains("2 voxel(s) are NaN or infinite"),
        "{e}"
    );
    assert!(e.contains("(x=0, y=0, z=0)"), "{e}");
}

fn small_case(dir: &Path, id: &str) -> std::path::PathBuf {
    let options = SynthOptions {
        dims: [32, 32, 16],
        spacing_mm: 7.5,
        ..SynthOptions::cartoon()
    };
    write_case(
        dir,
        id,
        &generate_case(5, &options),
        LabelConvention::Brats2021,
    )
    .unwrap()
}

#[test]
fn brats_folders_load_in_both_namings() {
    let dir = common::scratch_dir("brats");
    let folder = small_case(&dir, "BraTS20_Training_001");
    let case = load_case(&folder, None).unwrap();
    assert_eq!(case.id, "BraTS20_Training_001");
    assert_eq!(case.convention, LabelConvention::Brats2021);
    assert_eq!(case.modalities[0].dims, [32, 32, 16]);
    let seg = case.seg.as_ref().expect("seg present");
    assert!(seg.data.contains(&4.0), "ET labelled 4");

    // Rename to the 2023 layout: <id>-{t1n,t1c,t2w,t2f,seg}.nii.gz.
    let new = dir.join("BraTS-GLI-00001-000");
    std::fs::create_dir_all(&new).unwrap();
    for (old, renamed) in [
        ("t1", "t1n"),
        ("t1ce", "t1c"),
        ("t2", "t2w"),
        ("flair", "t2f"),
        ("seg", "seg"),
    ] {
        std::fs::copy(
            folder.join(format!("BraTS20_Training_001_{old}.nii.gz")),
            new.join(format!("BraTS-GLI-00001-000-{renamed}.nii.gz")),
        )
        .unwrap();
    }
    let case = load_case(&new, None).unwrap();
    assert_eq!(case.id, "BraTS-GLI-00001-000");
    assert_eq!(case.convention, LabelConvention::Brats2023);
    assert_eq!(case.convention.region_of(3), 3, "ET is 3 from 2023 on");
    assert_eq!(
        case.convention.region_of(4),
        0,
        "4 is resection cavity, not tumour"
    );
    let overridden = load_case(&new, Some(LabelConvention::Brats2021)).unwrap();
    assert_eq!(overridden.convention, LabelConvention::Brats2021);
}

#[test]
fn bad_case_folders_are_refused_naming_the_problem() {
    let dir = common::scratch_dir("bad-cases");
    let folder = small_case(&dir, "case1");
    std::fs::remove_file(folder.join("case1_t1ce.nii.gz")).unwrap();
    let e = load_case(&folder, None).unwrap_err().to_string();
    assert!(
        e.contains("case1") && e.contains("missing the T1ce modality"),
        "{e}"
    );

    let other = small_case(&dir, "case2");
    let odd = SynthOptions {
        dims: [32, 30, 16],
        spacing_mm: 7.5,
        ..SynthOptions::cartoon()
    };
    let resized = generate_case(1, &odd);
    let header = synthetic_header(odd.dims, odd.spacing_mm);
    let t2: Vec<i16> = resized.modalities[2].iter().map(|v| *v as i16).collect();
    raagr2_lab::data::write_volume(&other.join("case2_t2.nii.gz"), odd.dims, &t2, &header).unwrap();
    let e = load_case(&other, None).unwrap_err().to_string();
    assert!(
        e.contains("case2_t2.nii.gz") && e.contains("[32, 30, 16]") && e.contains("one grid"),
        "{e}"
    );

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = load_case(&empty, None).unwrap_err().to_string();
    assert!(
        e.contains("empty") && e.contains("no BraTS FLAIR file"),
        "{e}"
    );
}

/// x + 10y + 100z over the 6x5x4 fixture grid, x fastest.
fn fixture_values() -> Vec<f32> {
    (0..4)
        .flat_map(|z| (0..5).flat_map(move |y| (0..6).map(move |x| (x + 10 * y + 100 * z) as f32)))
        .collect()
}

#[test]
fn nifti2_files_written_by_nibabel_read_with_values_scaling_and_affine() {
    // Written by tools/nifti2_fixtures.py (nibabel): little-endian int16 with scaling and a
    // rotated sform, gzipped; big-endian float32 with a qform only.
    let scaled = read_volume(&common::fixture("nifti2_i16_scaled.nii.gz")).unwrap();
    assert_eq!(scaled.dims, [6, 5, 4]);
    assert_eq!(scaled.spacing_mm, [1.2, 1.2, 2.5]);
    let want: Vec<f32> = fixture_values().iter().map(|v| 2.0 * v + 7.0).collect();
    assert_eq!(scaled.data, want);
    let a = scaled.affine();
    assert_eq!((a[0][1], a[1][0], a[2][2]), (-1.2, 1.2, 2.5));
    assert_eq!((a[0][3], a[1][3], a[2][3]), (30.0, -20.0, 5.0));

    let big_endian = read_volume(&common::fixture("nifti2_f32_be.nii")).unwrap();
    assert_eq!(big_endian.data, fixture_values());
    let a = big_endian.affine();
    let close = |x: f64, y: f64| (x - y).abs() < 1e-5;
    assert!(
        close(a[0][0], -1.5) && close(a[1][1], -1.5) && close(a[2][2], 1.5),
        "{a:?}"
    );
    assert!(
        close(a[0][3], 10.0) && close(a[1][3], 20.0) && close(a[2][3], -30.0),
        "{a:?}"
    );
}

#[test]
fn modalities_on_different_grids_of_the_same_size_are_refused() {
    let dir = common::scratch_dir("grid-mismatch");
    let folder = small_case(&dir, "Shifted_001");
    let t2 = folder.join("Shifted_001_t2.nii.gz");
    let mut volume = read_volume(&t2).unwrap();
    // Same dims, origin moved by 4 mm along x.
    volume.header.srow_x[3] += 4.0;
    let values: Vec<i16> = volume.data.iter().map(|v| *v as i16).collect();
    raagr2_lab::data::write_volume(&t2, volume.dims, &values, &volume.header).unwrap();
    let e = load_case(&folder, None).unwrap_err().to_string();
    assert!(
        e.contains("Shifted_001_t2.nii.gz")
            && e.contains("Shifted_001_t1.nii.gz")
            && e.contains("4.000 mm"),
        "{e}"
    );
}

#[test]
fn a_huge_header_is_refused_before_any_voxel_data_is_read() {
    let dir = common::scratch_dir("huge-header");
    let path = dir.join("huge.nii.gz");
    write(&path, &grid().mapv(|v| v as f32));
    // Rewrite dims to 1500 x 1500 x 1000 in the (gzipped) header, keeping the small data.
    let mut raw = Vec::new();
    use std::io::{Read, Write};
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    for (i, d) in [1500i16, 1500, 1000].iter().enumerate() {
        raw[42 + 2 * i..44 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let started = std::time::Instant::now();
    let e = error_of(&path);
    assert!(
        e.contains("huge.nii.gz") && e.contains("2250000000 voxels") && e.contains("limit"),
        "{e}"
    );
    assert!(
        started.elapsed().as_secs() < 5,
        "refused without decompressing the data"
    );
}

#[test]
fn a_gzipped_file_claiming_a_far_data_offset_is_truncated_not_an_allocation() {
    // The size of gzipped data is unknown until decompressed, so the header check cannot
    // refuse this; reading must stream past it instead of reserving 500 GB.
    let dir = common::scratch_dir("far-offset");
    let path = dir.join("far.nii.gz");
    write(&path, &grid().mapv(|v| v as f32));
    let mut raw = Vec::new();
    use std::io::{Read, Write};
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    raw[108..112].copy_from_slice(&5e11f32.to_le_bytes());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let e = error_of(&path);
    assert!(e.contains("far.nii.gz") && e.contains("truncated"), "{e}");
}

#[test]
fn random_header_mutations_of_real_files_give_errors_not_panics() {
    let dir = common::scratch_dir("header-fuzz");
    let good = dir.join("good.nii");
    write(&good, &grid().mapv(|v| v as i16));
    let original = std::fs::read(&good).unwrap();
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut refused, mut read) = (0, 0);
    for round in 0..400 {
        let mut bytes = original.clone();
        for _ in 0..1 + next() % 3 {
            let at = (next() % 352) as usize;
            bytes[at] = next() as u8;
        }
        if round % 5 == 0 {
            bytes.truncate((next() % original.len() as u64) as usize);
        }
        let path = dir.join(format!("m{round}.nii"));
        std::fs::write(&path, &bytes).unwrap();
        let outcome = std::panic::catch_unwind(|| read_volume(&path).map(|v| v.data.len()));
        match outcome.unwrap_or_else(|_| panic!("read_volume panicked on mutation {round}")) {
            Ok(_) => read += 1,
            Err(e) => {
                assert!(e.to_string().contains(&format!("m{round}.nii")), "{e}");
                refused += 1;
            }
        }
    }
    assert!(refused > 50 && read > 50, "{refused} refused, {read} read");
}
