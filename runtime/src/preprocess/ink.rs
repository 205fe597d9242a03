//! Picking the digit out of a grey picture: which way round the ink is, the paper's uneven
//! lighting taken away, a threshold chosen for this picture, and the connected components that
//! make up the digit kept while specks and grain away from it are dropped.

use image::{imageops, GrayImage, Luma};
use imageproc::contrast::otsu_level;
use imageproc::filter::{gaussian_blur_f32, median_filter};
use imageproc::morphology::{grayscale_open, Mask};
use imageproc::region_labelling::{connected_components, Connectivity};

/// Ink contrast below which a picture counts as blank (grey levels above the paper).
const MIN_INK: u8 = 24;
/// Side of the coarse picture the paper's lighting is estimated on.
const LIGHTING_SIDE: u32 = 64;
/// Pictures smaller than this (longer side, pixels) are taken to be evenly lit.
const SMALL_PICTURE: u32 = 64;
/// Radius of the median that estimates the paper's shade, as a share of the longer side.
const SHADE_RADIUS: f32 = 0.2;
/// A component this far from the digit (in units of the digit's longer side) is not part of it.
const NEAR: f32 = 0.4;
/// A part smaller than this share of the digit's seed is dust, even beside it.
const SPECK: f32 = 0.02;
/// A part this close to the digit (in units of its longer side) is part of it, whatever its shape.
const TOUCHING: f32 = 0.08;

/// The digit found in a picture: ink intensity (0 = paper) and the threshold that separates
/// ink from paper in it, with every pixel outside the digit's components set to 0.
pub struct Ink {
    /// Ink above the paper, whatever the picture's polarity and lighting (0 = paper).
    pub ink: GrayImage,
    /// The level above which a pixel of `ink` is a stroke.
    pub threshold: u8,
    /// Inclusive bounding box of the digit's components: x0, y0, x1, y1.
    pub bbox: (u32, u32, u32, u32),
}

/// Finds the digit in a grey picture, or `None` if no ink stands out from the paper.
pub fn find(grey: &GrayImage) -> Option<Ink> {
    let long = grey.width().max(grey.height());
    // Grain and JPEG blocks are finer than any stroke of a digit that fills a tenth of the page.
    let mut g = if long >= 96 {
        gaussian_blur_f32(grey, (long as f32 / 500.0).clamp(0.8, 2.0))
    } else {
        grey.clone()
    };
    // A picture as small as a scan of one digit has no room for lighting to vary: its paper
    // is one shade, the border's, and the digit fills too much of it for a median to see past.
    let small = long < SMALL_PICTURE;
    let mut shade = if small {
        GrayImage::from_pixel(g.width(), g.height(), Luma([border_median(&g)]))
    } else {
        paper_shade(&g)
    };
    if dark_ink(&g, &shade) {
        imageops::invert(&mut g);
        imageops::invert(&mut shade);
    }
    // A first look against the paper's shade (a wide median, which follows shadows and
    // gradients) finds the digit and measures its strokes. The second takes the lighting as
    // an opening just wider than those strokes, which never eats into thick ink.
    let first = split(minus(&g, &shade), small)?;
    let Split {
        ink,
        mask,
        threshold,
        bbox,
    } = if small {
        first
    } else {
        let width = super::frame::stroke_width(&first.mask).unwrap_or(1.0);
        split(minus(&g, &lighting(&g, width)), false).unwrap_or(first)
    };
    Some(Ink {
        ink: ink_inside(&ink, &mask),
        threshold,
        bbox,
    })
}

/// Ink and paper told apart under one estimate of the lighting.
struct Split {
    ink: GrayImage,
    mask: GrayImage,
    threshold: u8,
    bbox: (u32, u32, u32, u32),
}

/// Chooses the threshold for ink above the paper and picks the digit's components.
fn split(ink: GrayImage, flat_paper: bool) -> Option<Split> {
    // The paper is most of a page, so the median is the paper's level. A scan of one digit may
    // be mostly ink, but there the paper's one shade has already been taken away.
    // Its grain, too, is then left to Otsu, which sees plenty of ink to split from.
    let (paper, noise) = if flat_paper {
        (0, 0)
    } else {
        let paper = percentile(&histogram(&ink), 0.5);
        (paper, mad(&ink, paper))
    };
    let peak = ink.pixels().map(|p| p.0[0]).max().unwrap_or(0);
    if peak.saturating_sub(paper) < MIN_INK.max(noise.saturating_mul(6)) {
        return None;
    }
    // Otsu splits ink from paper; grain sets a floor, and the cap keeps faint ink on a page
    // where ink is so rare that Otsu splits the paper's own noise.
    let floor = paper
        .saturating_add(noise.saturating_mul(5))
        .max(paper + MIN_INK / 4);
    let cap = paper + (peak - paper) / 2;
    let threshold = otsu_level(&ink).clamp(floor.min(cap), cap);
    let (mask, bbox) = digit_components(&ink, threshold)?;
    Some(Split {
        ink,
        mask,
        threshold,
        bbox,
    })
}

/// The paper's shade at every pixel, whichever way round the ink is: a median over a fifth of
/// the picture, which the strokes of a digit are too few to move, and which follows gradients
/// and keeps a shadow's edge.
fn paper_shade(g: &GrayImage) -> GrayImage {
    on_coarse(g, |coarse, _| {
        let long = coarse.width().max(coarse.height()) as f32;
        let radius = (long * SHADE_RADIUS).round().max(1.0) as u32;
        median_filter(coarse, radius, radius)
    })
}

/// Whether the ink is darker than the paper. The border is mostly paper: when it is clearly
/// light or clearly dark, that settles it. A grey border (a shadow, a dim photo) leaves it to
/// the ink itself, the strongest departure from the paper's shade, dark or light.
fn dark_ink(g: &GrayImage, shade: &GrayImage) -> bool {
    match border_median(g) {
        0..=89 => return false,
        161..=255 => return true,
        _ => {}
    }
    let (mut darker, mut lighter) = (0u8, 0u8);
    for (p, q) in g.pixels().zip(shade.pixels()) {
        let (v, paper) = (p.0[0], q.0[0]);
        darker = darker.max(paper.saturating_sub(v));
        lighter = lighter.max(v.saturating_sub(paper));
    }
    // Dark ink on paper is by far the commoner: light ink must stand out twice as far.
    2 * lighter as u32 <= 2 * darker as u32 + lighter as u32
}

fn border_median(g: &GrayImage) -> u8 {
    let (w, h) = g.dimensions();
    let mut border = [0u32; 256];
    let edge = (0..w)
        .flat_map(|x| [(x, 0), (x, h - 1)])
        .chain((0..h).flat_map(|y| [(0, y), (w - 1, y)]));
    edge.for_each(|(x, y)| border[g.get_pixel(x, y).0[0] as usize] += 1);
    percentile(&border, 0.5)
}

/// Applies `op` to a copy of the picture about [`LIGHTING_SIDE`] pixels on its longer side
/// (given the factor it was shrunk by), and brings the result back to the picture's size:
/// lighting is smooth, so it is estimated coarse, cheaply.
fn on_coarse(g: &GrayImage, op: impl FnOnce(&GrayImage, f32) -> GrayImage) -> GrayImage {
    let (w, h) = g.dimensions();
    let k = (w.max(h) as f32 / LIGHTING_SIDE as f32).max(1.0);
    let (cw, ch) = (
        ((w as f32 / k).round() as u32).max(1),
        ((h as f32 / k).round() as u32).max(1),
    );
    let coarse = imageops::resize(g, cw, ch, imageops::FilterType::Triangle);
    imageops::resize(&op(&coarse, k), w, h, imageops::FilterType::Triangle)
}

/// The paper's lighting (ink bright): a grey opening of a coarse copy, with a square just
/// wider than strokes `stroke` pixels wide, removes the ink and keeps gradients and shadows,
/// which are wider.
fn lighting(g: &GrayImage, stroke: f32) -> GrayImage {
    on_coarse(g, |coarse, k| {
        let widest = coarse.width().max(coarse.height()) as f32 * 0.25;
        let radius = ((stroke / k).ceil() + 1.0).min(widest);
        grayscale_open(coarse, &Mask::square((radius.round() as u8).max(1)))
    })
}

/// `g` − `paper`, saturating at 0: the ink above the paper.
fn minus(g: &GrayImage, paper: &GrayImage) -> GrayImage {
    GrayImage::from_fn(g.width(), g.height(), |x, y| {
        Luma([g.get_pixel(x, y).0[0].saturating_sub(paper.get_pixel(x, y).0[0])])
    })
}

/// The mask of the digit's components above `threshold`, and their bounding box.
fn digit_components(ink: &GrayImage, threshold: u8) -> Option<(GrayImage, (u32, u32, u32, u32))> {
    let binary = GrayImage::from_fn(ink.width(), ink.height(), |x, y| {
        Luma([u8::from(ink.get_pixel(x, y).0[0] > threshold)])
    });
    let labels = connected_components(&binary, Connectivity::Eight, Luma([0u8]));
    let parts = parts(&labels, ink, threshold);
    // The digit is drawn in strokes: its strongest stroke-like part (ink well above the
    // threshold, over a large area) seeds it. The soft edge of a shadow is wide but barely
    // above the threshold; solid blobs (a shadow's corner, a blot) seed it only when nothing
    // else does.
    let seed = (0..parts.len())
        .filter(|&i| parts[i].strokes())
        .max_by_key(|&i| parts[i].energy)
        .or_else(|| (0..parts.len()).max_by_key(|&i| parts[i].area))?;
    let mut keep = vec![false; parts.len()];
    keep[seed] = true;
    let mut bbox = parts[seed].bbox;
    let seed_area = parts[seed].area as f32;
    // Grow the digit by the parts near it, until none is added: a 5's hat, a broken stroke.
    // Small round specks beside it are dust.
    loop {
        let side = (bbox.2 - bbox.0).max(bbox.3 - bbox.1) as f32 + 1.0;
        let mut added = false;
        for (i, p) in parts.iter().enumerate() {
            let area = p.area as f32;
            let gap = gap(bbox, p.bbox);
            // Right beside the digit any piece of ink belongs to it (a stroke broken into
            // dots); a little further, only strokes and large parts do.
            let part_of_digit = area >= SPECK * seed_area
                && (gap <= TOUCHING * side || p.strokes() || area >= 0.25 * seed_area);
            if !keep[i] && part_of_digit && gap <= NEAR * side {
                keep[i] = true;
                bbox = union(bbox, p.bbox);
                added = true;
            }
        }
        if !added {
            break;
        }
    }
    let mask = GrayImage::from_fn(ink.width(), ink.height(), |x, y| {
        let l = labels.get_pixel(x, y).0[0] as usize;
        Luma([if l > 0 && keep[l - 1] { 255 } else { 0 }])
    });
    Some((mask, bbox))
}

/// Area, ink above `threshold`, boundary and bounding box of every labelled component
/// (label l at index l − 1).
fn parts(
    labels: &image::ImageBuffer<Luma<u32>, Vec<u32>>,
    ink: &GrayImage,
    threshold: u8,
) -> Vec<Part> {
    let (w, h) = labels.dimensions();
    let label = |x: i64, y: i64| {
        if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
            0
        } else {
            labels.get_pixel(x as u32, y as u32).0[0]
        }
    };
    let mut parts: Vec<Part> = Vec::new();
    for (x, y, l) in labels.enumerate_pixels() {
        let l = l.0[0];
        if l == 0 {
            continue;
        }
        if parts.len() < l as usize {
            parts.resize(l as usize, Part::default());
        }
        let (xi, yi) = (x as i64, y as i64);
        let edge = [(xi - 1, yi), (xi + 1, yi), (xi, yi - 1), (xi, yi + 1)]
            .iter()
            .any(|&(a, b)| label(a, b) != l);
        let excess = ink.get_pixel(x, y).0[0].saturating_sub(threshold) as u64;
        parts[l as usize - 1].add(x, y, edge, excess * excess);
    }
    parts
}

/// The ink of the digit: its components, widened by the blur's reach so their soft edges stay.
fn ink_inside(ink: &GrayImage, mask: &GrayImage) -> GrayImage {
    let near = imageproc::morphology::dilate(mask, imageproc::distance_transform::Norm::LInf, 2);
    GrayImage::from_fn(ink.width(), ink.height(), |x, y| {
        if near.get_pixel(x, y).0[0] > 0 {
            *ink.get_pixel(x, y)
        } else {
            Luma([0])
        }
    })
}

#[derive(Clone, Copy, Default)]
struct Part {
    area: u32,
    energy: u64,
    boundary: u32,
    bbox: (u32, u32, u32, u32),
}

impl Part {
    fn add(&mut self, x: u32, y: u32, edge: bool, energy: u64) {
        self.bbox = if self.area == 0 {
            (x, y, x, y)
        } else {
            union(self.bbox, (x, y, x, y))
        };
        self.area += 1;
        self.boundary += u32::from(edge);
        self.energy += energy;
    }

    /// Whether the part is made of strokes, narrow for its size (width 2·area ÷ boundary under
    /// 0.3 of its longer side), rather than a solid blob.
    fn strokes(&self) -> bool {
        let side = (self.bbox.2 - self.bbox.0).max(self.bbox.3 - self.bbox.1) + 1;
        super::frame::width(self.area, self.boundary) < 0.3 * side as f32
    }
}

fn union(a: (u32, u32, u32, u32), b: (u32, u32, u32, u32)) -> (u32, u32, u32, u32) {
    (a.0.min(b.0), a.1.min(b.1), a.2.max(b.2), a.3.max(b.3))
}

/// Distance between two boxes (0 when they overlap), the larger of the x and y gaps.
fn gap(a: (u32, u32, u32, u32), b: (u32, u32, u32, u32)) -> f32 {
    let dx = b.0.saturating_sub(a.2).max(a.0.saturating_sub(b.2));
    let dy = b.1.saturating_sub(a.3).max(a.1.saturating_sub(b.3));
    dx.max(dy) as f32
}

fn histogram(g: &GrayImage) -> [u32; 256] {
    let mut h = [0u32; 256];
    g.pixels().for_each(|p| h[p.0[0] as usize] += 1);
    h
}

fn percentile(h: &[u32; 256], q: f64) -> u8 {
    let total: u32 = h.iter().sum();
    let target = (total as f64 * q) as u32;
    let mut seen = 0;
    for (v, &n) in h.iter().enumerate() {
        seen += n;
        if seen > target {
            return v as u8;
        }
    }
    255
}

/// Robust spread of the paper's grain: the median absolute deviation from `centre`, × 1.48.
fn mad(g: &GrayImage, centre: u8) -> u8 {
    let mut h = [0u32; 256];
    g.pixels()
        .for_each(|p| h[p.0[0].abs_diff(centre) as usize] += 1);
    (percentile(&h, 0.5) as f32 * 1.48).round().min(255.0) as u8
}
