//! The digit, once found, framed as MNIST framed its digits: strokes brought to MNIST's width,
//! the longer side scaled to 20 px (antialiased, from a sharp outline as NIST's bilevel scans
//! were), and the centre of mass put on pixel (14, 14) of 28×28.

use image::{imageops, GrayImage};
use imageproc::distance_transform::Norm;
use imageproc::morphology::{dilate, erode};
use mnist::{PIXELS, SIDE};

use super::ink::Ink;

/// Longer side of the digit's outline while its strokes are measured and adjusted: 4× the 20 px
/// it ends up at, so that a stroke is several pixels wide.
pub const OUTLINE_SIDE: u32 = 80;
/// MNIST's typical stroke width at [`OUTLINE_SIDE`], in pixels: the median over the test set's
/// digits, measured by [`stroke_width`] (a test keeps it true).
pub const MNIST_STROKE: f32 = 11.0;
/// Strokes within this factor of MNIST's are left as drawn; MNIST's own vary as much.
const STROKE_SLACK: f32 = 1.4;

/// A digit this small (longer side, pixels) is already at MNIST's resolution: there are no
/// sharper edges to recover, so its grey levels are kept as they are.
const LOW_RES: u32 = 40;

/// The 28×28 MNIST framing of the digit found in a picture.
pub fn mnist_frame(ink: &Ink) -> [u8; PIXELS] {
    let (x0, y0, x1, y1) = ink.bbox;
    let digit = if (x1 - x0).max(y1 - y0) < LOW_RES {
        stretched(ink)
    } else {
        normalise_strokes(outline(ink))
    };
    let Some((x0, y0, x1, y1)) = bbox(&digit) else {
        return [0; PIXELS];
    };
    let crop = imageops::crop_imm(&digit, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image();
    scaled_and_centred(&crop)
}

/// A low-resolution digit's own grey levels, its faint edge included, stretched so that its
/// strongest ink is 255.
fn stretched(ink: &Ink) -> GrayImage {
    let edge = ink.threshold / 8;
    let peak = ink.ink.pixels().map(|p| p.0[0]).max().unwrap_or(255).max(1) as u32;
    GrayImage::from_fn(ink.ink.width(), ink.ink.height(), |x, y| {
        let v = ink.ink.get_pixel(x, y).0[0];
        image::Luma([if v > edge {
            (v as u32 * 255 / peak) as u8
        } else {
            0
        }])
    })
}

/// The digit scaled to 20 px on its longer side (antialiased) and centred by mass in 28×28.
fn scaled_and_centred(crop: &GrayImage) -> [u8; PIXELS] {
    let (w, h) = crop.dimensions();
    let scale = 20.0 / w.max(h) as f32;
    centre(&scaled(crop, scale, imageops::FilterType::Triangle))
}

/// `g` resized by `factor` (each side at least 1 px) with `filter`.
fn scaled(g: &GrayImage, factor: f32, filter: imageops::FilterType) -> GrayImage {
    let side = |n: u32| ((n as f32 * factor).round() as u32).max(1);
    imageops::resize(g, side(g.width()), side(g.height()), filter)
}

/// The digit's sharp outline at [`OUTLINE_SIDE`]: its ink resampled, then thresholded.
pub fn outline(ink: &Ink) -> GrayImage {
    let (x0, y0, x1, y1) = ink.bbox;
    let margin = 3;
    let (cx0, cy0) = (x0.saturating_sub(margin), y0.saturating_sub(margin));
    let cx1 = (x1 + margin).min(ink.ink.width() - 1);
    let cy1 = (y1 + margin).min(ink.ink.height() - 1);
    let crop = imageops::crop_imm(&ink.ink, cx0, cy0, cx1 - cx0 + 1, cy1 - cy0 + 1).to_image();
    let f = OUTLINE_SIDE as f32 / ((x1 - x0).max(y1 - y0) + 1) as f32;
    let filter = if f < 1.0 {
        imageops::FilterType::Triangle
    } else {
        imageops::FilterType::CatmullRom
    };
    let mut g = scaled(&crop, f, filter);
    g.pixels_mut()
        .for_each(|p| p.0[0] = if p.0[0] > ink.threshold { 255 } else { 0 });
    g
}

/// Thick marker and thin pencil brought to MNIST's stroke width.
fn normalise_strokes(outline: GrayImage) -> GrayImage {
    let Some(width) = stroke_width(&outline) else {
        return outline;
    };
    let by = ((width - MNIST_STROKE).abs() / 2.0).round() as u8;
    if width > MNIST_STROKE * STROKE_SLACK {
        // Never erode a stroke away entirely: keep at least a third of it.
        let by = by.min((width / 3.0) as u8);
        let thinner = erode(&outline, Norm::L2, by);
        if bbox(&thinner).is_some() {
            return thinner;
        }
    } else if width < MNIST_STROKE / STROKE_SLACK {
        return dilate(&outline, Norm::L2, by.max(1));
    }
    outline
}

/// Mean stroke width of an outline, 2 × area ÷ boundary: a stroke of width w and length l has
/// area w·l and about 2·l boundary pixels.
pub fn stroke_width(outline: &GrayImage) -> Option<f32> {
    let (w, h) = outline.dimensions();
    let on = |x: i64, y: i64| {
        x >= 0
            && y >= 0
            && x < w as i64
            && y < h as i64
            && outline.get_pixel(x as u32, y as u32).0[0] > 0
    };
    let (mut area, mut boundary) = (0u32, 0u32);
    for (x, y, p) in outline.enumerate_pixels() {
        if p.0[0] == 0 {
            continue;
        }
        area += 1;
        let (x, y) = (x as i64, y as i64);
        if !(on(x - 1, y) && on(x + 1, y) && on(x, y - 1) && on(x, y + 1)) {
            boundary += 1;
        }
    }
    (boundary > 0).then(|| width(area, boundary))
}

/// The width of strokes covering `area` pixels with `boundary` edge pixels.
pub(super) fn width(area: u32, boundary: u32) -> f32 {
    2.0 * area as f32 / boundary.max(1) as f32
}

fn bbox(g: &GrayImage) -> Option<(u32, u32, u32, u32)> {
    let mut found: Option<(u32, u32, u32, u32)> = None;
    for (x, y, p) in g.enumerate_pixels() {
        if p.0[0] > 0 {
            let b = found.get_or_insert((x, y, x, y));
            *b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
        }
    }
    found
}

/// Pastes `small` into 28×28 with its centre of mass on pixel (14, 14), whose centre is at
/// 14.5 in continuous coordinates.
fn centre(small: &GrayImage) -> [u8; PIXELS] {
    let (cx, cy) = centre_of_mass(small);
    let half = SIDE as f32 / 2.0 + 0.5;
    let (dx, dy) = ((half - cx).round() as i64, (half - cy).round() as i64);
    let mut out = [0u8; PIXELS];
    for (x, y, p) in small.enumerate_pixels() {
        let (tx, ty) = (x as i64 + dx, y as i64 + dy);
        if (0..SIDE as i64).contains(&tx) && (0..SIDE as i64).contains(&ty) {
            out[ty as usize * SIDE + tx as usize] = p.0[0];
        }
    }
    out
}

/// Centre of mass of a grey picture, in continuous coordinates.
pub fn centre_of_mass(img: &GrayImage) -> (f32, f32) {
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
