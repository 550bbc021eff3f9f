//! Labelled RGB images as the classifiers read them: three planes (red, green, blue), each
//! row-major, one fixed side for the whole set.

/// A set of square RGB images of one side, each with a class label.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    pub side: usize,
    /// `len() * image_bytes()` bytes: each image's red, green and blue planes.
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

impl ImageSet {
    pub fn new(side: usize) -> ImageSet {
        ImageSet {
            side,
            pixels: Vec::new(),
            labels: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes of one image (three planes).
    pub fn image_bytes(&self) -> usize {
        3 * self.side * self.side
    }

    /// Image `index` as its three planes.
    pub fn image(&self, index: usize) -> &[u8] {
        let n = self.image_bytes();
        &self.pixels[index * n..(index + 1) * n]
    }

    /// Appends an image given as planes.
    pub fn push(&mut self, label: u8, planes: &[u8]) {
        assert_eq!(
            planes.len(),
            self.image_bytes(),
            "an image of the set's side"
        );
        self.labels.push(label);
        self.pixels.extend_from_slice(planes);
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let mut set = ImageSet::new(self.side);
        for &i in indices {
            set.push(self.labels[i], self.image(i));
        }
        set
    }

    /// How many images each of `classes` classes has.
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for &label in &self.labels {
            counts[usize::from(label)] += 1;
        }
        counts
    }
}

/// The centre square of an interleaved RGB image, resized to `side` x `side` (triangle filter),
/// as planes.
pub fn square_planes(image: &image::RgbImage, side: usize) -> Vec<u8> {
    let short = image.width().min(image.height());
    let (x, y) = ((image.width() - short) / 2, (image.height() - short) / 2);
    let square = image::imageops::crop_imm(image, x, y, short, short).to_image();
    let resized = image::imageops::resize(
        &square,
        side as u32,
        side as u32,
        image::imageops::FilterType::Triangle,
    );
    let mut planes = vec![0u8; 3 * side * side];
    for (i, pixel) in resized.pixels().enumerate() {
        for c in 0..3 {
            planes[c * side * side + i] = pixel[c];
        }
    }
    planes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wide_image_is_cropped_to_its_centre_square_and_split_into_planes() {
        // 6 x 4: red columns 0 and 5 (cropped away), the centre 4 x 4 green.
        let image = image::RgbImage::from_fn(6, 4, |x, _| {
            if x == 0 || x == 5 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 200, 10])
            }
        });
        let planes = square_planes(&image, 4);
        assert_eq!(planes.len(), 48);
        assert!(planes[..16].iter().all(|&r| r == 0), "no red left");
        assert!(planes[16..32].iter().all(|&g| g == 200));
        assert!(planes[32..].iter().all(|&b| b == 10));
    }
}
