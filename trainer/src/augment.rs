//! On-the-fly augmentation of MNIST digits for training: a small random affine warp (shift,
//! rotation, scale) and a stroke made thicker or thinner, drawn from a seed per image and epoch
//! so that a run is reproducible whatever the batching.

use mnist::{SplitMix, PIXELS, SIDE};

/// The augmentation in words, for the model card and `--help`.
pub const DESCRIPTION: &str =
    "per image and epoch: shift ±2 px, rotation ±12°, scale 0.9–1.1, stroke thickness ±1 px (blended)";

const MAX_SHIFT: f32 = 2.0;
const MAX_DEGREES: f32 = 12.0;
const MAX_SCALE: f32 = 0.1;

/// A uniform draw in [-1, 1).
fn signed(rng: &mut SplitMix) -> f32 {
    (rng.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// Digit `image` (28×28, 0..255) warped and re-stroked as drawn by `seed`.
pub fn augment(image: &[u8], seed: u64) -> [u8; PIXELS] {
    let mut rng = SplitMix::new(seed);
    let angle = signed(&mut rng) * MAX_DEGREES.to_radians();
    let scale = 1.0 + signed(&mut rng) * MAX_SCALE;
    let (dx, dy) = (signed(&mut rng) * MAX_SHIFT, signed(&mut rng) * MAX_SHIFT);
    let stroke = signed(&mut rng);
    let warped = warp(image, angle, scale, dx, dy);
    restroke(&warped, stroke)
}

/// Inverse-maps every output pixel through the rotation and scale about the centre, plus the
/// shift, and samples the input bilinearly (outside is background).
fn warp(image: &[u8], angle: f32, scale: f32, dx: f32, dy: f32) -> [u8; PIXELS] {
    let c = SIDE as f32 / 2.0 - 0.5;
    let (sin, cos) = angle.sin_cos();
    let at = |x: i32, y: i32| pixel(image, x, y) as f32;
    let mut out = [0u8; PIXELS];
    for (i, o) in out.iter_mut().enumerate() {
        let (x, y) = ((i % SIDE) as f32 - c - dx, (i / SIDE) as f32 - c - dy);
        let sx = (cos * x + sin * y) / scale + c;
        let sy = (-sin * x + cos * y) / scale + c;
        let (x0, y0) = (sx.floor(), sy.floor());
        let (fx, fy) = (sx - x0, sy - y0);
        let (x0, y0) = (x0 as i32, y0 as i32);
        let v = at(x0, y0) * (1.0 - fx) * (1.0 - fy)
            + at(x0 + 1, y0) * fx * (1.0 - fy)
            + at(x0, y0 + 1) * (1.0 - fx) * fy
            + at(x0 + 1, y0 + 1) * fx * fy;
        *o = v.round().clamp(0.0, 255.0) as u8;
    }
    out
}

/// Blends the digit towards its 3×3 grey dilation (`amount` > 0, a thicker pen) or erosion
/// (`amount` < 0, a thinner one); |amount| ≤ 1 is the share of the full 1 px change.
fn restroke(image: &[u8; PIXELS], amount: f32) -> [u8; PIXELS] {
    let thicker = amount > 0.0;
    let mut out = [0u8; PIXELS];
    for (i, o) in out.iter_mut().enumerate() {
        let (x, y) = ((i % SIDE) as i32, (i / SIDE) as i32);
        let mut m = image[i];
        for (nx, ny) in (-1..=1).flat_map(|a| (-1..=1).map(move |b| (x + a, y + b))) {
            let v = pixel(image, nx, ny);
            m = if thicker { m.max(v) } else { m.min(v) };
        }
        let t = amount.abs();
        *o = (image[i] as f32 * (1.0 - t) + m as f32 * t).round() as u8;
    }
    out
}

/// Pixel (x, y) of a 28×28 digit; outside it is background.
fn pixel(image: &[u8], x: i32, y: i32) -> u8 {
    let inside = (0..SIDE as i32).contains(&x) && (0..SIDE as i32).contains(&y);
    if inside {
        image[y as usize * SIDE + x as usize]
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar() -> [u8; PIXELS] {
        let mut img = [0u8; PIXELS];
        for y in 6..22 {
            for x in 13..15 {
                img[y * SIDE + x] = 255;
            }
        }
        img
    }

    #[test]
    fn the_identity_warp_changes_nothing() {
        assert_eq!(warp(&bar(), 0.0, 1.0, 0.0, 0.0), bar());
        assert_eq!(restroke(&bar(), 0.0), bar());
    }

    #[test]
    fn a_whole_pixel_shift_moves_the_digit() {
        let moved = warp(&bar(), 0.0, 1.0, 1.0, 0.0);
        assert_eq!(moved[10 * SIDE + 15], 255);
        assert_eq!(moved[10 * SIDE + 13], 0);
    }

    #[test]
    fn thicker_adds_ink_and_thinner_removes_it() {
        let ink = |img: &[u8; PIXELS]| img.iter().map(|&p| p as u32).sum::<u32>();
        assert!(ink(&restroke(&bar(), 1.0)) > ink(&bar()));
        assert!(ink(&restroke(&bar(), -0.5)) < ink(&bar()));
    }

    #[test]
    fn the_same_seed_gives_the_same_picture() {
        assert_eq!(augment(&bar(), 7), augment(&bar(), 7));
        assert_ne!(augment(&bar(), 7), augment(&bar(), 8));
    }
}
