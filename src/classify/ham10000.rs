//! HAM10000 (dermoscopy, seven classes) as it is distributed: `HAM10000_metadata.csv` (lesion_id,
//! image_id, dx, ...) and `ISIC_*.jpg` images in one or more folders; a split by lesion, and a
//! generator of small stand-ins in exactly that layout.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::images::{ImageSet, square_planes};
use crate::data::DataError;
use crate::util::rng::SplitMix64;

pub const METADATA_FILE: &str = "HAM10000_metadata.csv";
/// The folders the images come in (any folder of `ISIC_*.jpg` under the data folder is read).
pub const IMAGE_FOLDERS: [&str; 2] = ["HAM10000_images_part_1", "HAM10000_images_part_2"];

/// The diagnoses (`dx`), in label order.
pub const CLASSES: [&str; 7] = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"];
pub const CLASS_NAMES: [&str; 7] = [
    "actinic keratosis / intraepithelial carcinoma",
    "basal cell carcinoma",
    "benign keratosis-like lesion",
    "dermatofibroma",
    "melanoma",
    "melanocytic nevus",
    "vascular lesion",
];
/// Images per class in the real data set (10,015 in all): the imbalance the stand-in copies.
const REAL_COUNTS: [usize; 7] = [327, 514, 1099, 115, 1113, 6705, 142];

/// One row of the metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub lesion_id: String,
    pub image_id: String,
    /// Index into [`CLASSES`].
    pub class: u8,
}

/// Reads `HAM10000_metadata.csv`: the lesion_id, image_id and dx columns (others are ignored).
pub fn read_metadata(path: &Path) -> Result<Vec<Record>, DataError> {
    let bad = |problem: String| DataError::BadFile {
        path: path.to_path_buf(),
        problem,
    };
    let mut reader = csv::Reader::from_path(path).map_err(|e| match e.kind() {
        csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            DataError::Missing(path.to_path_buf())
        }
        _ => bad(e.to_string()),
    })?;
    let headers = reader.headers().map_err(|e| bad(e.to_string()))?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| {
                bad(format!(
                    "no '{name}' column (the header has: {})",
                    headers.iter().collect::<Vec<_>>().join(", ")
                ))
            })
    };
    let (lesion, image, dx) = (column("lesion_id")?, column("image_id")?, column("dx")?);
    let mut records = Vec::new();
    let mut seen = BTreeSet::new();
    for (row, result) in reader.records().enumerate() {
        // Line numbers as an editor shows them: the header is line 1.
        let line = row + 2;
        let record = result.map_err(|e| bad(format!("line {line}: {e}")))?;
        let field = |i: usize, name: &str| {
            let value = record.get(i).unwrap_or("").trim();
            if value.is_empty() {
                Err(bad(format!("line {line}: empty {name}")))
            } else {
                Ok(value.to_string())
            }
        };
        let diagnosis = field(dx, "dx")?;
        let class = CLASSES
            .iter()
            .position(|c| *c == diagnosis)
            .ok_or_else(|| {
                bad(format!(
                    "line {line}: dx '{diagnosis}' is not one of {}",
                    CLASSES.join(", ")
                ))
            })?;
        let image_id = field(image, "image_id")?;
        if !seen.insert(image_id.clone()) {
            return Err(bad(format!(
                "line {line}: image {image_id} is listed twice"
            )));
        }
        records.push(Record {
            lesion_id: field(lesion, "lesion_id")?,
            image_id,
            class: class as u8,
        });
    }
    if records.is_empty() {
        return Err(bad("no images listed".into()));
    }
    Ok(records)
}

/// Every `*.jpg` in `dir` and its immediate subfolders, by file stem (the image id).
pub fn index_images(dir: &Path) -> Result<HashMap<String, PathBuf>, DataError> {
    let list = |folder: &Path| -> Result<Vec<PathBuf>, DataError> {
        let entries = std::fs::read_dir(folder).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => DataError::Missing(folder.to_path_buf()),
            _ => DataError::Io {
                path: folder.to_path_buf(),
                error: source,
            },
        })?;
        Ok(entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
    };
    let is_jpeg = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
    };
    let mut index = HashMap::new();
    for entry in list(dir)? {
        let files = if entry.is_dir() {
            list(&entry)?
        } else {
            vec![entry]
        };
        for file in files.into_iter().filter(|f| is_jpeg(f)) {
            if let Some(stem) = file.file_stem().and_then(|s| s.to_str()) {
                index.insert(stem.to_string(), file.clone());
            }
        }
    }
    Ok(index)
}

/// The data set loaded: images (centre square, resized to `side`) labelled by class, and the
/// metadata row of each.
#[derive(Debug, Clone)]
pub struct Ham10000 {
    pub images: ImageSet,
    pub records: Vec<Record>,
}

/// Loads a HAM10000 folder: the metadata and every image it lists, decoded and resized.
pub fn load(dir: &Path, side: usize) -> Result<Ham10000, DataError> {
    let records = read_metadata(&dir.join(METADATA_FILE))?;
    let index = index_images(dir)?;
    let mut images = ImageSet::new(side);
    for record in &records {
        let path = index.get(&record.image_id).ok_or_else(|| DataError::BadCase {
            folder: dir.to_path_buf(),
            problem: format!(
                "{} is listed in {METADATA_FILE} but no {}.jpg is in the folder or its subfolders",
                record.image_id, record.image_id
            ),
        })?;
        images.push(record.class, &read_image(path, side)?);
    }
    Ok(Ham10000 { images, records })
}

/// Decodes one image to planes of `side` x `side`. A JPEG cut short is refused (decoders fill
/// the missing part with grey and say nothing).
pub fn read_image(path: &Path, side: usize) -> Result<Vec<u8>, DataError> {
    let bytes = std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => DataError::Missing(path.to_path_buf()),
        _ => DataError::Io {
            path: path.to_path_buf(),
            error: source,
        },
    })?;
    let unreadable = |problem: String| DataError::BadFile {
        path: path.to_path_buf(),
        problem: format!("unreadable image: {problem}"),
    };
    let format = image::guess_format(&bytes).map_err(|e| unreadable(e.to_string()))?;
    if format == image::ImageFormat::Jpeg && !ends_with_jpeg_eoi(&bytes) {
        return Err(unreadable(
            "the JPEG is truncated (no end-of-image marker)".into(),
        ));
    }
    let decoded = image::load_from_memory_with_format(&bytes, format)
        .map_err(|e| unreadable(e.to_string()))?;
    Ok(square_planes(&decoded.to_rgb8(), side))
}

/// Whether a JPEG's end-of-image marker (FF D9) is among its last bytes (some writers pad a
/// little after it).
fn ends_with_jpeg_eoi(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Indices of the records in the train and test splits: whole lesions go to one side (a lesion
/// photographed several times is never in both), `test_fraction` of the lesions to test, chosen
/// by `seed`.
pub fn split_by_lesion(
    records: &[Record],
    test_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let lesions: BTreeSet<&str> = records.iter().map(|r| r.lesion_id.as_str()).collect();
    let mut order: Vec<&str> = lesions.into_iter().collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..order.len()).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    let test_count = ((order.len() as f64 * test_fraction).round() as usize).min(order.len());
    let test: BTreeSet<&str> = order[..test_count].iter().copied().collect();
    (0..records.len()).partition(|&i| !test.contains(records[i].lesion_id.as_str()))
}

/// What the stand-in generator writes.
#[derive(Debug, Clone, Copy)]
pub struct Ham10000StandIn {
    /// Images in all (each class gets its real share, and at least two).
    pub images: usize,
    /// Width of the JPEGs (height three quarters of it, as the real 600 x 450).
    pub width: u32,
    pub seed: u64,
}

/// Writes a stand-in HAM10000 folder to `dir`: the metadata CSV (the real columns) and JPEGs
/// split over the two image folders, each file written atomically. A lesion on skin, whose class
/// is its pattern (texture, border, structures), drawn in random skin and lesion colours so the
/// mean colour does not give the class away; the classes as imbalanced as the real ones, and
/// some lesions photographed twice or three times.
pub fn write_stand_in(dir: &Path, spec: Ham10000StandIn) -> Result<(), DataError> {
    if spec.images < 2 * CLASSES.len() || spec.width < 32 {
        return Err(DataError::Invalid(format!(
            "a HAM10000 stand-in needs at least {} images of at least 32 pixels wide",
            2 * CLASSES.len()
        )));
    }
    let mut rng = SplitMix64::new(spec.seed);
    let mut csv = String::from("lesion_id,image_id,dx,dx_type,age,sex,localization,dataset\n");
    let mut image_number = 24306;
    let mut lesion_number = 0;
    for (class, count) in stand_in_counts(spec.images).into_iter().enumerate() {
        let mut left = count;
        while left > 0 {
            // Some lesions are photographed more than once, as in the real data.
            let shots = (1 + (rng.next_u64() % 3) as usize).min(left);
            lesion_number += 1;
            let lesion = format!("HAM_{lesion_number:07}");
            let look = LesionLook::draw(&mut rng);
            for _ in 0..shots {
                let image_id = format!("ISIC_{image_number:07}");
                let folder = IMAGE_FOLDERS[image_number % 2];
                image_number += 1;
                let jpeg = encode_jpeg(&stand_in_image(class, &look, spec.width, &mut rng))?;
                let path = dir.join(folder).join(format!("{image_id}.jpg"));
                crate::atomic::write_bytes(&path, &jpeg).map_err(|source| DataError::Io {
                    path,
                    error: source,
                })?;
                let age = 5 * (6 + rng.next_u64() % 12);
                let sex = ["male", "female"][(rng.next_u64() % 2) as usize];
                csv += &format!(
                    "{lesion},{image_id},{},histo,{age}.0,{sex},back,vidir_modern\n",
                    CLASSES[class]
                );
            }
            left -= shots;
        }
    }
    let path = dir.join(METADATA_FILE);
    crate::atomic::write_bytes(&path, csv.as_bytes()).map_err(|source| DataError::Io {
        path,
        error: source,
    })
}

/// Images per class: the real shares of `total`, at least two each.
fn stand_in_counts(total: usize) -> [usize; 7] {
    let real: usize = REAL_COUNTS.iter().sum();
    let mut counts = REAL_COUNTS.map(|c| (c * total / real).max(2));
    let assigned: usize = counts.iter().sum();
    // The majority class (nv) absorbs the rounding.
    let nv = 5;
    counts[nv] = (counts[nv] + total).saturating_sub(assigned).max(2);
    counts
}

/// What stays the same across the photographs of one lesion.
struct LesionLook {
    skin: [f32; 3],
    lesion: [f32; 3],
    /// Radius as a share of the image's half height.
    radius: f32,
}

impl LesionLook {
    fn draw(rng: &mut SplitMix64) -> LesionLook {
        let tone = rng.range(0.45, 0.95);
        LesionLook {
            skin: [255.0 * tone, 200.0 * tone, 170.0 * tone],
            lesion: std::array::from_fn(|_| rng.range(30.0, 200.0)),
            radius: rng.range(0.45, 0.8),
        }
    }
}

/// One photograph: skin, and a lesion whose pattern is the class: 0 scaly (fine noise), 1
/// radial streaks, 2 a crack grid, 3 a pale centre in a ring, 4 an irregular wavy border, 5 a
/// plain round disc, 6 dots (lobules).
fn stand_in_image(
    class: usize,
    look: &LesionLook,
    width: u32,
    rng: &mut SplitMix64,
) -> image::RgbImage {
    let height = width * 3 / 4;
    let (cx, cy) = (
        width as f32 / 2.0 + rng.range(-0.08, 0.08) * width as f32,
        height as f32 / 2.0 + rng.range(-0.08, 0.08) * height as f32,
    );
    let radius = look.radius * height as f32 / 2.0;
    let rotation = rng.range(0.0, std::f32::consts::TAU);
    let lobes = 3.0 + (rng.next_u64() % 4) as f32;
    let dots: Vec<(f32, f32)> = (0..7)
        .map(|_| {
            let (a, r) = (rng.range(0.0, std::f32::consts::TAU), rng.range(0.0, 0.75));
            (cx + r * radius * a.cos(), cy + r * radius * a.sin())
        })
        .collect();
    let mut pixels = Vec::with_capacity((3 * width * height) as usize);
    for y in 0..height {
        for x in 0..width {
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            let distance = (dx * dx + dy * dy).sqrt() / radius;
            let angle = dy.atan2(dx) + rotation;
            let border = if class == 4 {
                1.0 + 0.25 * (lobes * angle).sin()
            } else {
                1.0
            };
            let inside = distance < border;
            // 0: skin, 1: lesion colour.
            let mut weight = if inside { 1.0 } else { 0.0 };
            if inside {
                weight *= match class {
                    0 => 0.55 + 0.45 * rng.uniform(),
                    1 => 0.6 + 0.4 * (12.0 * angle).cos().abs(),
                    2 => {
                        let grid = |v: f32| ((v / radius * 4.0).fract() - 0.5).abs() < 0.08;
                        if grid(dx) || grid(dy) { 0.35 } else { 1.0 }
                    }
                    3 if distance < 0.45 => 0.25,
                    6 => {
                        let near = dots.iter().any(|&(px, py)| {
                            ((x as f32 - px).powi(2) + (y as f32 - py).powi(2)).sqrt()
                                < 0.14 * radius
                        });
                        if near { 1.0 } else { 0.45 }
                    }
                    _ => 1.0,
                };
            }
            for c in 0..3 {
                let value =
                    look.skin[c] + (look.lesion[c] - look.skin[c]) * weight + 6.0 * rng.normal();
                pixels.push(value.round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    image::RgbImage::from_raw(width, height, pixels).expect("width x height x 3 bytes")
}

fn encode_jpeg(image: &image::RgbImage) -> Result<Vec<u8>, DataError> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 92)
        .encode_image(image)
        .map_err(|e| DataError::Invalid(format!("encoding a stand-in JPEG: {e}")))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("raagr2-ham-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const SPEC: Ham10000StandIn = Ham10000StandIn {
        images: 120,
        width: 64,
        seed: 3,
    };

    #[test]
    fn a_stand_in_loads_imbalanced_with_lesions_photographed_more_than_once() {
        let dir = scratch("roundtrip");
        write_stand_in(&dir, SPEC).unwrap();
        for folder in IMAGE_FOLDERS {
            assert!(std::fs::read_dir(dir.join(folder)).unwrap().count() > 10);
        }
        let data = load(&dir, 32).unwrap();
        assert_eq!(data.images.len(), 120);
        assert_eq!(data.images.side, 32);
        let counts = data.images.class_counts(CLASSES.len());
        assert!(counts.iter().all(|&c| c >= 2), "{counts:?}");
        let nv = counts[5];
        assert!(
            nv * 2 > 120 && counts.iter().all(|&c| c <= nv),
            "{counts:?}"
        );
        let lesions: BTreeSet<&str> = data.records.iter().map(|r| r.lesion_id.as_str()).collect();
        assert!(lesions.len() < 100, "some lesions have several images");
    }

    #[test]
    fn no_lesion_is_in_both_splits() {
        let dir = scratch("split");
        write_stand_in(&dir, SPEC).unwrap();
        let records = read_metadata(&dir.join(METADATA_FILE)).unwrap();
        let (train, test) = split_by_lesion(&records, 0.2, 5);
        assert_eq!(train.len() + test.len(), records.len());
        let lesions = |idx: &[usize]| -> BTreeSet<String> {
            idx.iter().map(|&i| records[i].lesion_id.clone()).collect()
        };
        assert!(lesions(&train).is_disjoint(&lesions(&test)));
        let share = test.len() as f64 / records.len() as f64;
        assert!((0.1..0.3).contains(&share), "{share}");
        assert_eq!(split_by_lesion(&records, 0.2, 5), (train, test));
    }

    #[test]
    fn the_mean_colour_does_not_give_the_class_away() {
        // Nearest class centroid on mean RGB, balanced accuracy over the seven classes between
        // two stand-ins: near chance (1/7); colours tied to the class would score far above it.
        let (fit_dir, test_dir) = (scratch("colour-fit"), scratch("colour-test"));
        let spec = Ham10000StandIn {
            images: 700,
            width: 40,
            ..SPEC
        };
        write_stand_in(&fit_dir, spec).unwrap();
        write_stand_in(&test_dir, Ham10000StandIn { seed: 4, ..spec }).unwrap();
        let mean_colour = |images: &ImageSet, i: usize| -> [f64; 3] {
            let n = images.side * images.side;
            let image = images.image(i);
            std::array::from_fn(|c| {
                image[c * n..(c + 1) * n]
                    .iter()
                    .map(|&v| f64::from(v))
                    .sum::<f64>()
                    / n as f64
            })
        };
        let fit = load(&fit_dir, 24).unwrap().images;
        let test = load(&test_dir, 24).unwrap().images;
        let counts = fit.class_counts(7);
        let mut centroids = [[0.0f64; 3]; 7];
        for i in 0..fit.len() {
            let class = usize::from(fit.labels[i]);
            let colour = mean_colour(&fit, i);
            for c in 0..3 {
                centroids[class][c] += colour[c] / counts[class] as f64;
            }
        }
        let mut hits = [0usize; 7];
        for i in 0..test.len() {
            let colour = mean_colour(&test, i);
            let distance =
                |k: usize| -> f64 { (0..3).map(|c| (colour[c] - centroids[k][c]).powi(2)).sum() };
            let nearest = (0..7)
                .min_by(|&a, &b| distance(a).total_cmp(&distance(b)))
                .unwrap();
            if nearest == usize::from(test.labels[i]) {
                hits[nearest] += 1;
            }
        }
        let test_counts = test.class_counts(7);
        let balanced = (0..7)
            .map(|k| hits[k] as f64 / test_counts[k] as f64)
            .sum::<f64>()
            / 7.0;
        assert!(balanced < 0.3, "mean colour predicts the class: {balanced}");
    }

    #[test]
    fn broken_data_is_refused_naming_the_file_and_the_problem() {
        let dir = scratch("broken");
        let err = |dir: &Path| load(dir, 16).unwrap_err().to_string();
        let message = err(&dir);
        assert!(
            message.contains(METADATA_FILE) && message.contains("not found"),
            "{message}"
        );

        write_stand_in(&dir, SPEC).unwrap();
        let metadata = dir.join(METADATA_FILE);
        let good = std::fs::read_to_string(&metadata).unwrap();

        std::fs::write(&metadata, good.replacen(",nv,", ",naevus,", 1)).unwrap();
        let message = err(&dir);
        assert!(
            message.contains("dx 'naevus' is not one of akiec"),
            "{message}"
        );
        assert!(message.contains("line "), "{message}");

        std::fs::write(&metadata, good.replacen("dx,", "diagnosis,", 1)).unwrap();
        assert!(err(&dir).contains("no 'dx' column"), "{}", err(&dir));

        let first_image = good.lines().nth(1).unwrap().split(',').nth(1).unwrap();
        let duplicate = format!("{good}{}\n", good.lines().nth(1).unwrap());
        std::fs::write(&metadata, duplicate).unwrap();
        assert!(err(&dir).contains("listed twice"), "{}", err(&dir));

        std::fs::write(&metadata, &good).unwrap();
        let index = index_images(&dir).unwrap();
        let jpeg = index[first_image].clone();
        let bytes = std::fs::read(&jpeg).unwrap();
        std::fs::write(&jpeg, &bytes[..bytes.len() / 3]).unwrap();
        let message = err(&dir);
        assert!(
            message.contains(first_image) && message.contains("truncated"),
            "{message}"
        );
        std::fs::write(&jpeg, b"not a JPEG at all").unwrap();
        let message = err(&dir);
        assert!(
            message.contains(first_image) && message.contains("unreadable image"),
            "{message}"
        );

        std::fs::remove_file(&jpeg).unwrap();
        let message = err(&dir);
        assert!(
            message.contains(first_image) && message.contains("no "),
            "{message}"
        );
    }
}
