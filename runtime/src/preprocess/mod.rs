//! From any picture of a digit to the 28×28 MNIST framing the network was trained on: grey,
//! white ink on black, the ink's bounding box scaled to 20 px on its longer side, centred by
//! its centre of mass in a 28×28 field.
//!
//! Photos are not scans: the paper is grainy, tinted and unevenly lit, the digit is small and
//! anywhere on the page, and dust lies beside it. [`decode`] brings any picture to grey under
//! bounded memory, [`ink::find`] takes the lighting away and picks the digit's components out
//! with a threshold chosen for the picture, and [`frame::mnist_frame`] brings the strokes to
//! MNIST's width and frames the digit.

use std::io::Read;
use std::path::Path;

use image::GrayImage;
use mnist::PIXELS;

mod decode;
pub mod frame;
pub mod ink;

pub use decode::{decode, MAX_DECODED_BYTES, MAX_FILE_BYTES, MAX_SIDE, MIN_SIDE, WORK_SIDE};

/// Why a picture cannot be classified.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PreprocessError {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Read(String),
    /// The file is empty.
    #[error("empty file")]
    Empty,
    /// The bytes are not a picture in a supported format, or are corrupt or truncated.
    #[error("not a readable image (PNG, JPEG, BMP, GIF, TIFF or WebP): {0}")]
    Decode(String),
    /// Larger than the decoding limits.
    #[error("image too large: limit is {MAX_SIDE}×{MAX_SIDE} pixels, {mib} MiB decoded and {mib} MiB of file ({0})", mib = MAX_DECODED_BYTES >> 20)]
    TooLarge(String),
    /// Too small to hold a digit.
    #[error("image is {0}×{1} pixels, too small to hold a digit (at least {MIN_SIDE}×{MIN_SIDE})")]
    TooSmall(u32, u32),
    /// No ink stands out from the background.
    #[error("no digit found: the picture is blank (no ink stands out from the background)")]
    Blank,
}

/// Decodes the picture at `path` and frames it as MNIST does.
pub fn load(path: &Path) -> Result<[u8; PIXELS], PreprocessError> {
    let file = std::fs::File::open(path).map_err(|e| PreprocessError::Read(e.to_string()))?;
    let mut bytes = Vec::new();
    // Read one byte past the limit, so that a larger file is refused without being read whole.
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| PreprocessError::Read(e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(PreprocessError::TooLarge(format!(
            "file over {} MiB",
            MAX_FILE_BYTES >> 20
        )));
    }
    frame(&decode(&bytes)?)
}

/// MNIST framing of a decoded grey picture.
pub fn frame(grey: &GrayImage) -> Result<[u8; PIXELS], PreprocessError> {
    let ink = ink::find(grey).ok_or(PreprocessError::Blank)?;
    Ok(frame::mnist_frame(&ink))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::DynamicImage;
    use std::io::Cursor;

    fn canvas(w: u32, h: u32, paper: u8) -> GrayImage {
        GrayImage::from_pixel(w, h, image::Luma([paper]))
    }

    #[test]
    fn dark_ink_on_light_paper_is_inverted_and_centred() {
        let mut img = canvas(200, 100, 240);
        for y in 20..80 {
            for x in 150..160 {
                img.put_pixel(x, y, image::Luma([10]));
            }
        }
        let out = frame(&img).unwrap();
        let (cx, cy) = frame::centre_of_mass(&GrayImage::from_raw(28, 28, out.to_vec()).unwrap());
        assert!(
            (cx - 14.0).abs() <= 1.0 && (cy - 14.0).abs() <= 1.0,
            "{cx},{cy}"
        );
        let rows_with_ink = (0..28)
            .filter(|y| (0..28).any(|x| out[y * 28 + x] > 128))
            .count();
        assert!((19..=21).contains(&rows_with_ink), "{rows_with_ink}");
        assert_eq!(out[0], 0);
    }

    #[test]
    fn blank_pages_are_refused() {
        for paper in [0u8, 255, 200] {
            let img = canvas(64, 64, paper);
            assert_eq!(frame(&img), Err(PreprocessError::Blank));
        }
    }

    #[test]
    fn tiny_and_empty_inputs_are_refused() {
        assert_eq!(decode(&[]), Err(PreprocessError::Empty));
        let mut png = Vec::new();
        DynamicImage::ImageLuma8(canvas(1, 1, 0))
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(decode(&png), Err(PreprocessError::TooSmall(1, 1)));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            if let Ok(img) = decode(&bytes) { let _ = frame(&img); }
        }

        #[test]
        fn png_with_corrupt_bytes_never_panics(pos in 0usize..200, value in proptest::num::u8::ANY) {
            let mut png = Vec::new();
            DynamicImage::ImageLuma8(canvas(16, 16, 30))
                .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            let pos = pos % png.len();
            png[pos] = value;
            if let Ok(img) = decode(&png) { let _ = frame(&img); }
        }
    }
}
