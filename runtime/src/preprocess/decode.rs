//! Bytes to a grey picture under bounded memory: the decoder's allocations are capped, colour
//! and alpha are folded into one grey byte per pixel as soon as the picture is decoded, and
//! large pictures are shrunk to a working size before any further work.

use std::io::Cursor;
use std::sync::Mutex;

use image::{DynamicImage, GenericImageView, GrayImage, ImageReader, Limits, Luma};

use super::PreprocessError;

/// Largest width or height accepted, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Largest decoded size accepted, in bytes (also bounds width × height).
pub const MAX_DECODED_BYTES: u64 = 256 * 1024 * 1024;
/// Largest file accepted, in bytes.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Smallest width or height accepted, in pixels.
pub const MIN_SIDE: u32 = 8;
/// Longest side the framing works at: a digit needs no more, and larger pictures are shrunk.
pub const WORK_SIDE: u32 = 1024;
/// Pictures claiming more pixels than this are decoded one at a time, across threads.
const LARGE_PIXELS: u64 = 16 * 1024 * 1024;

/// Serialises the decoding of large pictures, so that parallel workers never hold several
/// large decoded buffers at once.
static LARGE: Mutex<()> = Mutex::new(());

/// Decodes image bytes of any supported format to grey (transparent pixels count as white
/// paper), no larger than [`WORK_SIDE`] on its longer side.
pub fn decode(bytes: &[u8]) -> Result<GrayImage, PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty);
    }
    let (w, h) = reader(bytes)?.into_dimensions().map_err(decode_error)?;
    if w < MIN_SIDE || h < MIN_SIDE {
        return Err(PreprocessError::TooSmall(w, h));
    }
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(PreprocessError::TooLarge(format!("{w}×{h} pixels")));
    }
    let _guard = (w as u64 * h as u64 > LARGE_PIXELS)
        .then(|| LARGE.lock().unwrap_or_else(|p| p.into_inner()));
    let image = reader(bytes)?.decode().map_err(decode_error)?;
    Ok(shrink(grey(image), WORK_SIDE))
}

fn reader(bytes: &[u8]) -> Result<ImageReader<Cursor<&[u8]>>, PreprocessError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PreprocessError::Decode(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    Ok(reader)
}

fn decode_error(e: image::ImageError) -> PreprocessError {
    match e {
        image::ImageError::Limits(l) => PreprocessError::TooLarge(l.to_string()),
        other => PreprocessError::Decode(other.to_string()),
    }
}

/// One grey byte per pixel, composited over white, without a full-size colour copy.
fn grey(image: DynamicImage) -> GrayImage {
    if let DynamicImage::ImageLuma8(g) = image {
        return g;
    }
    let (w, h) = image.dimensions();
    let mut out = GrayImage::new(w, h);
    for (x, y, p) in image.pixels() {
        let [r, g, b, a] = p.0.map(|c| c as f32 / 255.0);
        let luma = 0.299 * r + 0.587 * g + 0.114 * b;
        out.put_pixel(x, y, Luma([((luma * a + (1.0 - a)) * 255.0).round() as u8]));
    }
    out
}

/// Averages `k`×`k` blocks so that the longer side is at most `side`: memory stays at the
/// output's size, and averaging keeps thin strokes as fainter, not missing, ink.
fn shrink(image: GrayImage, side: u32) -> GrayImage {
    let (w, h) = image.dimensions();
    let k = w.max(h).div_ceil(side);
    if k <= 1 {
        return image;
    }
    let (nw, nh) = (w.div_ceil(k), h.div_ceil(k));
    let mut sums = vec![(0u32, 0u32); (nw * nh) as usize];
    for (x, y, p) in image.enumerate_pixels() {
        let s = &mut sums[((y / k) * nw + x / k) as usize];
        s.0 += p.0[0] as u32;
        s.1 += 1;
    }
    GrayImage::from_fn(nw, nh, |x, y| {
        let (sum, n) = sums[(y * nw + x) as usize];
        Luma([((sum + n / 2) / n) as u8])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrink_averages_blocks_and_keeps_small_pictures() {
        let img = GrayImage::from_fn(2048, 1000, |x, _| {
            Luma([if x % 2 == 0 { 200 } else { 100 }])
        });
        let small = shrink(img.clone(), 1024);
        assert_eq!(small.dimensions(), (1024, 500));
        assert!(small.pixels().all(|p| p.0[0] == 150));
        assert_eq!(shrink(img.clone(), 4096), img);
    }
}
