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

/// `f` applied to every item, the items split evenly over every core; results in input order.
/// Pictures are framed this way, so a folder of them takes the time of its share per core.
pub fn on_all_cores<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().max(1));
    let chunk = items.len().div_ceil(threads).max(1);
    let f = &f;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("preprocessing never panics"))
            .collect()
    })
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

    /// Paints a filled rectangle of `ink` (inclusive corners).
    fn rect(img: &mut GrayImage, (x0, y0, x1, y1): (u32, u32, u32, u32), ink: u8) {
        for y in y0..=y1 {
            for x in x0..=x1 {
                img.put_pixel(x, y, image::Luma([ink]));
            }
        }
    }

    /// A "5" of bars on a 400×300 page, its hat detached from the body.
    fn five(paper: u8) -> GrayImage {
        let mut img = canvas(400, 300, paper);
        rect(&mut img, (150, 60, 230, 72), 20); // the hat, apart
        rect(&mut img, (150, 82, 162, 140), 20);
        rect(&mut img, (150, 140, 230, 152), 20);
        rect(&mut img, (218, 140, 230, 220), 20);
        rect(&mut img, (150, 208, 230, 220), 20);
        img
    }

    #[test]
    fn a_detached_stroke_is_kept_and_dust_beside_the_digit_is_dropped() {
        let mut img = five(235);
        for (x, y) in [(60, 40), (330, 250), (250, 120), (120, 230), (20, 280)] {
            rect(&mut img, (x, y, x + 3, y + 3), 10);
        }
        let found = ink::find(&img).unwrap();
        assert_eq!(found.bbox, (150, 60, 230, 220));
        assert_eq!(frame(&img).unwrap(), frame(&five(235)).unwrap());
    }

    #[test]
    fn a_lighting_gradient_and_a_shadow_are_taken_away() {
        let plain = frame(&five(235)).unwrap();
        let mut lit = five(235);
        for (x, y, p) in lit.enumerate_pixels_mut() {
            let light = 1.0 - 0.5 * x as f32 / 400.0 - if y > 180 { 0.3 } else { 0.0 };
            p.0[0] = (p.0[0] as f32 * light) as u8;
        }
        let framed = frame(&lit).unwrap();
        let differ = plain
            .iter()
            .zip(&framed)
            .filter(|(a, b)| a.abs_diff(**b) > 64)
            .count();
        assert!(differ <= 20, "{differ} pixels differ");
    }

    #[test]
    fn a_thick_marker_comes_out_near_mnists_stroke_width() {
        let mut thick = canvas(400, 300, 240);
        // A "7" drawn with a marker a third of its height wide.
        rect(&mut thick, (120, 40, 280, 110), 15);
        rect(&mut thick, (200, 40, 280, 260), 15);
        let found = ink::find(&thick).unwrap();
        let outline = frame::outline(&found);
        let drawn = frame::stroke_width(&outline).unwrap();
        assert!(drawn > 2.0 * frame::MNIST_STROKE, "{drawn}");
        let out = frame(&thick).unwrap();
        let on = out.iter().filter(|&&p| p > 128).count();
        // The same "7" at MNIST's width covers about 120 of 784 pixels; unnormalised, 250.
        assert!((80..=170).contains(&on), "{on} pixels of ink");
    }

    #[test]
    fn a_thin_pencil_comes_out_near_mnists_stroke_width() {
        let mut thin = canvas(400, 300, 230);
        // The same "7" drawn with a light pencil a fiftieth of its height wide.
        rect(&mut thin, (120, 40, 280, 44), 120);
        rect(&mut thin, (276, 40, 280, 260), 120);
        let drawn = frame::stroke_width(&frame::outline(&ink::find(&thin).unwrap())).unwrap();
        assert!(drawn < 0.5 * frame::MNIST_STROKE, "{drawn}");
        let on = frame(&thin).unwrap().iter().filter(|&&p| p > 128).count();
        assert!((50..=170).contains(&on), "{on} pixels of ink");
    }

    #[test]
    fn a_digit_filling_a_tiny_scan_is_read_not_refused() {
        // An 8×8 scan, white ink on black as the UCI digits are, where the digit is more than
        // half the picture: the paper's level is the border's, not the picture's median.
        let rows = [
            "........", ".######.", ".######.", ".##.###.", ".##.###.", ".######.", ".######.",
            "........",
        ];
        let img = GrayImage::from_fn(8, 8, |x, y| {
            image::Luma([if rows[y as usize].as_bytes()[x as usize] == b'#' {
                240
            } else {
                0
            }])
        });
        let out = frame(&img).unwrap();
        let on = out.iter().filter(|&&p| p > 128).count();
        // A 20×20 block with its small hole kept open.
        assert!((300..=395).contains(&on), "{on} pixels of ink");
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
