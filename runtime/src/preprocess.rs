//! From any picture of a digit to the 28×28 MNIST framing the network was trained on: grey,
//! white ink on black, the ink's bounding box scaled to 20 px on its longer side, centred by
//! its centre of mass in a 28×28 field.

use std::io::Cursor;
use std::path::Path;

use image::imageops::{self, FilterType};
use image::{DynamicImage, GrayImage, ImageReader, Limits};
use mnist::{PIXELS, SIDE};

/// Largest width or height accepted, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Largest decoded size accepted, in bytes (also bounds width × height).
pub const MAX_DECODED_BYTES: u64 = 256 * 1024 * 1024;
/// Smallest width or height accepted, in pixels.
pub const MIN_SIDE: u32 = 8;
/// Ink contrast below which a picture counts as blank (0-255, after removing the background).
const MIN_INK: u8 = 48;

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
    #[error("image too large: limit is {MAX_SIDE}×{MAX_SIDE} pixels and {mib} MiB decoded ({0})", mib = MAX_DECODED_BYTES >> 20)]
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
    let bytes = std::fs::read(path).map_err(|e| PreprocessError::Read(e.to_string()))?;
    frame(&decode(&bytes)?)
}

/// Decodes image bytes of any supported format under the size limits.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PreprocessError::Decode(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(l) => PreprocessError::TooLarge(l.to_string()),
        other => PreprocessError::Decode(other.to_string()),
    })?;
    if image.width() < MIN_SIDE || image.height() < MIN_SIDE {
        return Err(PreprocessError::TooSmall(image.width(), image.height()));
    }
    Ok(image)
}

/// Ink intensity (0 = background, 255 = full ink) of a decoded picture, whatever its polarity.
pub fn ink(image: &DynamicImage) -> GrayImage {
    // Transparent pixels are paper: composite over white before reading luminance.
    let rgba = image.to_rgba32f();
    let mut grey = GrayImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let luma = 0.299 * r + 0.587 * g + 0.114 * b;
        image::Luma([((luma * a + (1.0 - a)) * 255.0).round() as u8])
    });
    // The border is mostly paper: its median tells the paper's shade and the ink's polarity.
    let paper = border_median(&grey);
    if paper > 127 {
        imageops::invert(&mut grey);
    }
    let paper = paper.min(255 - paper);
    let peak = grey.pixels().map(|p| p.0[0]).max().unwrap_or(0);
    let range = peak.saturating_sub(paper).max(1) as f32;
    for p in grey.pixels_mut() {
        p.0[0] = ((p.0[0].saturating_sub(paper) as f32 / range) * 255.0).round() as u8;
    }
    if peak.saturating_sub(paper) < MIN_INK {
        grey.pixels_mut().for_each(|p| p.0[0] = 0);
    }
    grey
}

fn border_median(grey: &GrayImage) -> u8 {
    let (w, h) = grey.dimensions();
    let mut border: Vec<u8> = (0..w)
        .flat_map(|x| [grey.get_pixel(x, 0).0[0], grey.get_pixel(x, h - 1).0[0]])
        .chain((0..h).flat_map(|y| [grey.get_pixel(0, y).0[0], grey.get_pixel(w - 1, y).0[0]]))
        .collect();
    border.sort_unstable();
    border[border.len() / 2]
}

/// MNIST framing of a decoded picture.
pub fn frame(image: &DynamicImage) -> Result<[u8; PIXELS], PreprocessError> {
    let ink = ink(image);
    let (x0, y0, x1, y1) = ink_box(&ink).ok_or(PreprocessError::Blank)?;
    let crop = imageops::crop_imm(&ink, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image();
    let (w, h) = crop.dimensions();
    let scale = 20.0 / w.max(h) as f32;
    let (nw, nh) = (
        ((w as f32 * scale).round() as u32).max(1),
        ((h as f32 * scale).round() as u32).max(1),
    );
    // Triangle widens its support when shrinking, so large pictures are antialiased.
    let small = imageops::resize(&crop, nw, nh, FilterType::Triangle);
    let (cx, cy) = centre_of_mass(&small);
    let mut out = [0u8; PIXELS];
    // MNIST put the centre of mass on pixel (14, 14), whose centre is at 14.5 in continuous
    // coordinates.
    let half = SIDE as f32 / 2.0 + 0.5;
    let (dx, dy) = ((half - cx).round() as i64, (half - cy).round() as i64);
    for (x, y, p) in small.enumerate_pixels() {
        let (tx, ty) = (x as i64 + dx, y as i64 + dy);
        if (0..SIDE as i64).contains(&tx) && (0..SIDE as i64).contains(&ty) {
            out[ty as usize * SIDE + tx as usize] = p.0[0];
        }
    }
    Ok(out)
}

/// Bounding box (inclusive) of the pixels with a fair share of ink, if any.
fn ink_box(ink: &GrayImage) -> Option<(u32, u32, u32, u32)> {
    let threshold = 16;
    let mut found: Option<(u32, u32, u32, u32)> = None;
    for (x, y, p) in ink.enumerate_pixels() {
        if p.0[0] >= threshold {
            let b = found.get_or_insert((x, y, x, y));
            *b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
        }
    }
    found
}

fn centre_of_mass(img: &GrayImage) -> (f32, f32) {
    let (mut sx, mut sy, mut total) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y, p) in img.enumerate_pixels() {
        let m = p.0[0] as f64;
        sx += m * (x as f64 + 0.5);
        sy += m * (y as f64 + 0.5);
        total += m;
    }
    if total == 0.0 {
        return (img.width() as f32 / 2.0, img.height() as f32 / 2.0);
    }
    ((sx / total) as f32, (sy / total) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let out = frame(&DynamicImage::ImageLuma8(img)).unwrap();
        let (cx, cy) = centre_of_mass(&GrayImage::from_raw(28, 28, out.to_vec()).unwrap());
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
            let img = DynamicImage::ImageLuma8(canvas(64, 64, paper));
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
