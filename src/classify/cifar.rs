//! CIFAR-100 in its binary distribution format (`train.bin`, `test.bin`, label name files), and a
//! generator of small stand-ins in exactly that format.
//!
//! A record is 3,074 bytes: the coarse label (0-19), the fine label (0-99), then a 32x32 image
//! as three 1,024-byte planes (red, green, blue), each row-major.

use std::path::{Path, PathBuf};

use super::images::ImageSet;
use crate::data::DataError;
use crate::util::rng::SplitMix64;

pub const SIDE: usize = 32;
pub const IMAGE_BYTES: usize = 3 * SIDE * SIDE;
pub const RECORD_BYTES: usize = 2 + IMAGE_BYTES;
pub const FINE_CLASSES: usize = 100;
pub const COARSE_CLASSES: usize = 20;
/// CIFAR-100 groups its fine classes five to a superclass.
const FINE_PER_COARSE: usize = FINE_CLASSES / COARSE_CLASSES;

pub const TRAIN_FILE: &str = "train.bin";
pub const TEST_FILE: &str = "test.bin";
pub const FINE_NAMES_FILE: &str = "fine_label_names.txt";
pub const COARSE_NAMES_FILE: &str = "coarse_label_names.txt";

/// The images of one split, in file order: labelled with their fine class, and the coarse
/// class beside.
#[derive(Debug, Clone, PartialEq)]
pub struct CifarImages {
    pub images: ImageSet,
    pub coarse: Vec<u8>,
}

impl CifarImages {
    fn with_capacity(records: usize) -> CifarImages {
        CifarImages {
            images: ImageSet {
                side: SIDE,
                pixels: Vec::with_capacity(records * IMAGE_BYTES),
                labels: Vec::with_capacity(records),
            },
            coarse: Vec::with_capacity(records),
        }
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The fine labels.
    pub fn fine(&self) -> &[u8] {
        &self.images.labels
    }

    /// The split as the binary file holds it.
    pub fn to_records(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.len() * RECORD_BYTES);
        for i in 0..self.len() {
            bytes.extend([self.coarse[i], self.images.labels[i]]);
            bytes.extend_from_slice(self.images.image(i));
        }
        bytes
    }
}

/// The whole data set: both splits and the class names.
#[derive(Debug, Clone)]
pub struct Cifar100 {
    pub train: CifarImages,
    pub test: CifarImages,
    pub fine_names: Vec<String>,
    pub coarse_names: Vec<String>,
}

/// Reads a CIFAR-100 binary folder (`train.bin`, `test.bin`, `fine_label_names.txt`,
/// `coarse_label_names.txt`).
pub fn load(dir: &Path) -> Result<Cifar100, DataError> {
    Ok(Cifar100 {
        train: read_split(&dir.join(TRAIN_FILE))?,
        test: read_split(&dir.join(TEST_FILE))?,
        fine_names: read_label_names(&dir.join(FINE_NAMES_FILE), FINE_CLASSES)?,
        coarse_names: read_label_names(&dir.join(COARSE_NAMES_FILE), COARSE_CLASSES)?,
    })
}

/// Reads one split file.
pub fn read_split(path: &Path) -> Result<CifarImages, DataError> {
    parse_records(path, &read(path)?)
}

fn read(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => DataError::Missing(path.to_path_buf()),
        _ => DataError::Io {
            path: path.to_path_buf(),
            error: source,
        },
    })
}

/// Parses the records of a split file (`path` only names it in errors).
pub fn parse_records(path: &Path, bytes: &[u8]) -> Result<CifarImages, DataError> {
    let bad = |problem: String| DataError::BadFile {
        path: path.to_path_buf(),
        problem,
    };
    if bytes.is_empty() {
        return Err(bad("empty file: no CIFAR-100 records".into()));
    }
    if !bytes.len().is_multiple_of(RECORD_BYTES) {
        return Err(bad(format!(
            "{} bytes is not a whole number of {RECORD_BYTES}-byte CIFAR-100 records: record {} \
             is truncated (a CIFAR-10 file has 3,073-byte records)",
            bytes.len(),
            bytes.len() / RECORD_BYTES + 1
        )));
    }
    let mut split = CifarImages::with_capacity(bytes.len() / RECORD_BYTES);
    for (index, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        let (coarse, fine) = (record[0], record[1]);
        if usize::from(coarse) >= COARSE_CLASSES {
            return Err(bad(format!(
                "record {}: coarse label {coarse} is not one of the {COARSE_CLASSES} superclasses",
                index + 1
            )));
        }
        if usize::from(fine) >= FINE_CLASSES {
            return Err(bad(format!(
                "record {}: fine label {fine} is not one of the {FINE_CLASSES} classes",
                index + 1
            )));
        }
        split.coarse.push(coarse);
        split.images.push(fine, &record[2..]);
    }
    Ok(split)
}

/// Reads a label name file: one name per line, exactly `expected` of them.
pub fn read_label_names(path: &Path, expected: usize) -> Result<Vec<String>, DataError> {
    let bytes = read(path)?;
    let text = String::from_utf8(bytes).map_err(|_| DataError::BadFile {
        path: path.to_path_buf(),
        problem: "not UTF-8 text".into(),
    })?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != expected {
        return Err(DataError::BadFile {
            path: path.to_path_buf(),
            problem: format!("{} label names, expected {expected}", names.len()),
        });
    }
    Ok(names)
}

/// What the stand-in generator writes.
#[derive(Debug, Clone, Copy)]
pub struct CifarStandIn {
    /// Fine classes that occur (the first N of the 100; the format always names 100).
    pub classes: usize,
    pub train_per_class: usize,
    pub test_per_class: usize,
    pub seed: u64,
}

/// Writes a stand-in CIFAR-100 folder to `dir` (each file atomically): procedural images whose
/// class is a texture (the orientation and frequency of a grating), drawn in random colours, so
/// that a network has to learn the pattern: the mean colour says nothing about the class.
pub fn write_stand_in(dir: &Path, spec: CifarStandIn) -> Result<(), DataError> {
    if spec.classes == 0 || spec.classes > FINE_CLASSES {
        return Err(DataError::Invalid(format!(
            "a CIFAR-100 stand-in has 1 to {FINE_CLASSES} classes, not {}",
            spec.classes
        )));
    }
    let write = |name: &str, bytes: &[u8]| -> Result<(), DataError> {
        let path: PathBuf = dir.join(name);
        crate::atomic::write_bytes(&path, bytes).map_err(|source| DataError::Io {
            path,
            error: source,
        })
    };
    let splits = [
        (TRAIN_FILE, spec.train_per_class, 0),
        (TEST_FILE, spec.test_per_class, 1),
    ];
    for (name, per_class, stream) in splits {
        let images = stand_in_split(spec, per_class, stream);
        write(name, &images.to_records())?;
    }
    let fine: Vec<String> = (0..FINE_CLASSES).map(stand_in_class_name).collect();
    let coarse: Vec<String> = (0..COARSE_CLASSES)
        .map(|c| format!("group_{c:02}"))
        .collect();
    write(FINE_NAMES_FILE, (fine.join("\n") + "\n").as_bytes())?;
    write(COARSE_NAMES_FILE, (coarse.join("\n") + "\n").as_bytes())
}

/// One split: `per_class` images of every class, classes interleaved.
/// The stand-in's name of fine class `class` (what its `fine_label_names.txt` holds).
pub fn stand_in_class_name(class: usize) -> String {
    format!("pattern_{class:02}")
}

/// The stand-in's test split, in memory (exactly what [`write_stand_in`] writes as `test.bin`).
pub fn stand_in_test(spec: CifarStandIn) -> CifarImages {
    stand_in_split(spec, spec.test_per_class, 1)
}

fn stand_in_split(spec: CifarStandIn, per_class: usize, stream: u64) -> CifarImages {
    let mut rng = SplitMix64::stream(spec.seed, stream);
    let mut split = CifarImages::with_capacity(spec.classes * per_class);
    for _ in 0..per_class {
        for class in 0..spec.classes {
            split.coarse.push((class / FINE_PER_COARSE) as u8);
            split
                .images
                .push(class as u8, &stand_in_image(class, &mut rng));
        }
    }
    split
}

/// The orientation of class `class`'s grating: class mod 10 in steps of 9 degrees, 0 to 81.
/// Kept within a quarter turn so that a horizontal flip (the training augmentation), which
/// mirrors an angle to 180 degrees minus it, never turns one class's pattern into another's.
fn stand_in_angle(class: usize) -> f32 {
    (class % 10) as f32 * std::f32::consts::PI / 20.0
}

/// A grating whose orientation ([`stand_in_angle`]) and frequency (class / 10) make the class,
/// with a random phase, two random colours and pixel noise.
fn stand_in_image(class: usize, rng: &mut SplitMix64) -> Vec<u8> {
    let angle = stand_in_angle(class);
    let cycles = 1.5 + (class / 10) as f32 * 0.6;
    let phase = rng.range(0.0, std::f32::consts::TAU);
    let [background, foreground]: [[f32; 3]; 2] =
        std::array::from_fn(|_| std::array::from_fn(|_| rng.range(0.0, 255.0)));
    let (cos, sin) = (angle.cos(), angle.sin());
    let wave: Vec<f32> = (0..SIDE * SIDE)
        .map(|i| {
            let (x, y) = ((i % SIDE) as f32, (i / SIDE) as f32);
            let along = (x * cos + y * sin) / SIDE as f32;
            0.5 + 0.5 * (std::f32::consts::TAU * cycles * along + phase).sin()
        })
        .collect();
    let mut pixels = Vec::with_capacity(IMAGE_BYTES);
    for channel in 0..3 {
        let (low, high) = (background[channel], foreground[channel]);
        pixels.extend(wave.iter().map(|&w| {
            let value = low + (high - low) * w + 12.0 * rng.normal();
            value.round().clamp(0.0, 255.0) as u8
        }));
    }
    pixels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("raagr2-cifar-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const SPEC: CifarStandIn = CifarStandIn {
        classes: 10,
        train_per_class: 20,
        test_per_class: 5,
        seed: 7,
    };

    #[test]
    fn a_stand_in_reads_back_with_its_labels_and_names() {
        let dir = scratch("roundtrip");
        write_stand_in(&dir, SPEC).unwrap();
        let data = load(&dir).unwrap();
        assert_eq!(data.train.len(), 200);
        assert_eq!(data.test.len(), 50);
        assert_eq!(
            std::fs::metadata(dir.join(TRAIN_FILE)).unwrap().len(),
            200 * RECORD_BYTES as u64
        );
        for class in 0..10u8 {
            let count = data.train.fine().iter().filter(|&&f| f == class).count();
            assert_eq!(count, 20, "class {class}");
        }
        assert!(
            data.train
                .fine()
                .iter()
                .zip(&data.train.coarse)
                .all(|(f, c)| usize::from(*c) == usize::from(*f) / 5)
        );
        assert_eq!(data.fine_names.len(), 100);
        assert_eq!(data.coarse_names[3], "group_03");
        // Same seed, same bytes; another seed, other images.
        let again = scratch("roundtrip-again");
        write_stand_in(&again, SPEC).unwrap();
        assert_eq!(load(&again).unwrap().train, data.train);
        write_stand_in(&again, CifarStandIn { seed: 8, ..SPEC }).unwrap();
        assert_ne!(
            load(&again).unwrap().train.images.pixels,
            data.train.images.pixels
        );
    }

    /// Mean RGB of each image.
    fn mean_colours(images: &CifarImages) -> Vec<[f64; 3]> {
        (0..images.len())
            .map(|i| {
                let image = images.images.image(i);
                std::array::from_fn(|c| {
                    let plane = &image[c * SIDE * SIDE..(c + 1) * SIDE * SIDE];
                    plane.iter().map(|&v| f64::from(v)).sum::<f64>() / plane.len() as f64
                })
            })
            .collect()
    }

    #[test]
    fn the_mean_colour_does_not_give_the_class_away() {
        // Nearest class centroid on mean RGB, fitted on train, scored on test: near chance
        // (10%); a generator that tied colour to class would score far above it.
        let dir = scratch("colour");
        write_stand_in(
            &dir,
            CifarStandIn {
                train_per_class: 100,
                test_per_class: 50,
                ..SPEC
            },
        )
        .unwrap();
        let data = load(&dir).unwrap();
        let (train, test) = (mean_colours(&data.train), mean_colours(&data.test));
        let mut centroids = [[0.0f64; 3]; 10];
        for (colour, &class) in train.iter().zip(data.train.fine()) {
            for c in 0..3 {
                centroids[usize::from(class)][c] += colour[c] / 100.0;
            }
        }
        let nearest = |colour: &[f64; 3]| {
            (0..10)
                .min_by(|&a, &b| {
                    let d = |k: usize| -> f64 {
                        (0..3).map(|c| (colour[c] - centroids[k][c]).powi(2)).sum()
                    };
                    d(a).total_cmp(&d(b))
                })
                .unwrap()
        };
        let correct = test
            .iter()
            .zip(data.test.fine())
            .filter(|(colour, class)| nearest(colour) == usize::from(**class))
            .count();
        let accuracy = correct as f64 / test.len() as f64;
        assert!(accuracy < 0.2, "mean colour predicts the class: {accuracy}");
    }

    #[test]
    fn the_class_is_in_the_pattern() {
        // The grating's orientation is recoverable from the image: the direction of the
        // strongest gradient separates the ten orientations of the first ten classes.
        let dir = scratch("pattern");
        write_stand_in(&dir, SPEC).unwrap();
        let data = load(&dir).unwrap();
        let orientation = |image: &[u8]| {
            // Structure tensor summed over the planes (colours may cancel in a plain sum):
            // its main direction is the grating's normal.
            let v = |c: usize, x: usize, y: usize| f64::from(image[c * SIDE * SIDE + y * SIDE + x]);
            let (mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0);
            for c in 0..3 {
                for y in 1..SIDE - 1 {
                    for x in 1..SIDE - 1 {
                        let gx = v(c, x + 1, y) - v(c, x - 1, y);
                        let gy = v(c, x, y + 1) - v(c, x, y - 1);
                        (xx, yy, xy) = (xx + gx * gx, yy + gy * gy, xy + gx * gy);
                    }
                }
            }
            let angle = 0.5 * (2.0 * xy).atan2(xx - yy);
            angle.rem_euclid(std::f64::consts::PI)
        };
        let step = std::f64::consts::PI / 20.0;
        let correct = (0..data.test.len())
            .filter(|&i| {
                let found = (orientation(data.test.images.image(i)) / step).round() as usize % 20;
                found == usize::from(data.test.fine()[i]) % 10
            })
            .count();
        assert!(
            correct * 10 >= data.test.len() * 8,
            "{correct} of {} orientations recovered",
            data.test.len()
        );
    }

    #[test]
    fn a_horizontal_flip_never_turns_one_class_into_another() {
        // A flip mirrors a grating's orientation to pi - angle (orientations are modulo pi).
        let half_step = std::f32::consts::PI / 40.0;
        for class in 0..10 {
            let flipped = (std::f32::consts::PI - stand_in_angle(class)) % std::f32::consts::PI;
            for other in (0..10).filter(|&o| o != class) {
                let gap = (flipped - stand_in_angle(other)).abs();
                assert!(
                    gap > half_step,
                    "class {class} flipped looks like class {other}"
                );
            }
        }
    }

    #[test]
    fn broken_files_are_refused_naming_the_file_and_the_problem() {
        let dir = scratch("broken");
        write_stand_in(&dir, SPEC).unwrap();
        let path = dir.join(TRAIN_FILE);
        let bytes = std::fs::read(&path).unwrap();

        let truncated = parse_records(&path, &bytes[..bytes.len() - 100]).unwrap_err();
        let message = truncated.to_string();
        assert!(
            message.contains(TRAIN_FILE) && message.contains("truncated"),
            "{message}"
        );

        let mut wrong = bytes.clone();
        wrong[RECORD_BYTES + 1] = 140;
        let message = parse_records(&path, &wrong).unwrap_err().to_string();
        assert!(message.contains("record 2: fine label 140"), "{message}");
        wrong[RECORD_BYTES + 1] = 3;
        wrong[0] = 20;
        let message = parse_records(&path, &wrong).unwrap_err().to_string();
        assert!(message.contains("record 1: coarse label 20"), "{message}");

        let message = parse_records(&path, &[]).unwrap_err().to_string();
        assert!(message.contains("empty"), "{message}");

        std::fs::remove_file(dir.join(TEST_FILE)).unwrap();
        let message = load(&dir).unwrap_err().to_string();
        assert!(
            message.contains(TEST_FILE) && message.contains("not found"),
            "{message}"
        );

        std::fs::write(dir.join(FINE_NAMES_FILE), "apple\npear\n").unwrap();
        let message = read_label_names(&dir.join(FINE_NAMES_FILE), FINE_CLASSES)
            .unwrap_err()
            .to_string();
        assert!(message.contains("2 label names, expected 100"), "{message}");
    }
}
