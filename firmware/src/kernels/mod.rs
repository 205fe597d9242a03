//! The int8 kernels on HWC tensors. Callers (`model::run`) check every shape first, so the
//! kernels index freely; the inner loops run over zipped slices, which compile without bounds
//! checks.

mod conv;
mod fully_connected;
mod im2col;
mod pool;

pub use conv::conv;
pub use fully_connected::fully_connected;
pub use pool::pool;

/// Largest `kh · kw · in_c` a convolution may have (its im2col block lives on the stack).
pub const MAX_TAPS: usize = 1152;

/// Output pixels a convolution computes together: each weight word loaded serves all of them.
const BLOCK: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Shape;
    use crate::model::{Conv, FullyConnected, Pool, PoolKind};
    use crate::requant::quantize_multiplier;

    const UNIT: i32 = 1 << 30; // multiplier 0.5 at shift 1 = 1.0

    type Tensors<'a> = (&'a [i8], &'a [i32], &'a [i32], &'a [i8]);

    fn conv_layer<'a>(
        input: Shape,
        output: Shape,
        k: u8,
        pad: u8,
        (w, b, m, s): Tensors<'a>,
    ) -> Conv<'a> {
        Conv {
            input,
            output,
            kernel: (k, k),
            stride: (1, 1),
            padding: (pad, pad),
            weights: w,
            bias: b,
            multiplier: m,
            shift: s,
            input_zero_point: 0,
            output_zero_point: 0,
            act_min: -128,
            act_max: 127,
        }
    }

    #[test]
    fn conv_by_hand() {
        // 3×3 input 1..9, 2×2 kernel [[1,0],[0,-1]], no padding, scale 1: out = x[i][j] - x[i+1][j+1].
        let x: [i8; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        let (w, b, m, s) = ([1i8, 0, 0, -1], [10i32], [UNIT], [1i8]);
        let layer = conv_layer(
            Shape { h: 3, w: 3, c: 1 },
            Shape { h: 2, w: 2, c: 1 },
            2,
            0,
            (&w, &b, &m, &s),
        );
        let mut out = [0i8; 4];
        conv(&layer, &x, &mut out);
        assert_eq!(out, [6, 6, 6, 6]); // 10 + (x - x_diag) = 10 - 4
    }

    #[test]
    fn conv_padding_uses_the_zero_point() {
        // One 3×3 all-ones kernel over a 2×2 input with padding 1 and input zero point -5:
        // padded taps contribute 0, real taps (x + 5).
        let x: [i8; 4] = [-5, -4, -3, -2]; // real values 0, 1, 2, 3
        let (w, b, m, s) = ([1i8; 9], [0i32], [UNIT], [1i8]);
        let mut layer = conv_layer(
            Shape { h: 2, w: 2, c: 1 },
            Shape { h: 2, w: 2, c: 1 },
            3,
            1,
            (&w, &b, &m, &s),
        );
        layer.input_zero_point = -5;
        let mut out = [0i8; 4];
        conv(&layer, &x, &mut out);
        assert_eq!(out, [6, 6, 6, 6]);
    }

    #[test]
    fn fully_connected_by_hand_with_relu_clamp() {
        let x: [i8; 3] = [1, 2, 3];
        let w: [i8; 6] = [1, 1, 1, -1, -1, -1];
        let (b, m, s) = ([0i32, 0], [UNIT, UNIT], [1i8, 1]);
        let layer = FullyConnected {
            inputs: 3,
            outputs: 2,
            weights: &w,
            bias: &b,
            multiplier: &m,
            shift: &s,
            input_zero_point: 0,
            output_zero_point: 0,
            act_min: 0,
            act_max: 127,
        };
        let mut out = [0i8; 2];
        fully_connected(&layer, &x, &mut out);
        assert_eq!(out, [6, 0]);
    }

    #[test]
    fn pools_by_hand() {
        // 2×2×2 input (HWC), one 2×2 window.
        let x: [i8; 8] = [1, -1, 4, -4, 2, -2, 3, -3];
        let mut layer = Pool {
            kind: PoolKind::Max,
            input: Shape { h: 2, w: 2, c: 2 },
            output: Shape { h: 1, w: 1, c: 2 },
            kernel: (2, 2),
            stride: (2, 2),
            padding: (0, 0),
            act_min: -128,
            act_max: 127,
        };
        let mut out = [0i8; 2];
        pool(&layer, &x, &mut out);
        assert_eq!(out, [4, -1]);
        layer.kind = PoolKind::Average;
        pool(&layer, &x, &mut out);
        assert_eq!(out, [3, -3]); // 10/4 = 2.5 → 3, -10/4 = -2.5 → -3
    }

    /// Float reference convolution (HWC, same padding), for comparison with the int8 kernel.
    fn conv_f32(
        x: &[f32],
        s: Shape,
        w: &[f32],
        b: &[f32],
        oc: usize,
        k: usize,
        pad: usize,
    ) -> Vec<f32> {
        let mut out = Vec::new();
        for oy in 0..s.h as usize {
            for ox in 0..s.w as usize {
                for o in 0..oc {
                    let mut acc = b[o];
                    for ky in 0..k {
                        for kx in 0..k {
                            let (iy, ix) = (oy + ky, ox + kx);
                            if iy < pad
                                || ix < pad
                                || iy - pad >= s.h as usize
                                || ix - pad >= s.w as usize
                            {
                                continue;
                            }
                            for c in 0..s.c as usize {
                                let xi = ((iy - pad) * s.w as usize + ix - pad) * s.c as usize + c;
                                acc += x[xi] * w[((o * k + ky) * k + kx) * s.c as usize + c];
                            }
                        }
                    }
                    out.push(acc.max(0.0));
                }
            }
        }
        out
    }

    #[test]
    fn conv_matches_float_within_one_step() {
        let mut seed: u32 = 99;
        let mut rnd = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
        };
        let (shape, oc, k, pad) = (Shape { h: 6, w: 5, c: 3 }, 4usize, 3usize, 1usize);
        let x: Vec<f32> = (0..shape.len()).map(|_| rnd() + 0.5).collect(); // [0, 1)
        let w: Vec<f32> = (0..oc * k * k * 3).map(|_| rnd()).collect();
        let b: Vec<f32> = (0..oc).map(|_| rnd() * 0.1).collect();
        // Quantize as the quantizer does: input [0,1] at zp -128, weights per channel, ReLU out.
        let s_in = 1.0 / 255.0;
        let s_out = conv_f32(&x, shape, &w, &b, oc, k, pad)
            .iter()
            .cloned()
            .fold(0.0, f32::max)
            / 255.0;
        let xq: Vec<i8> = x
            .iter()
            .map(|v| ((v / s_in).round() as i32 - 128) as i8)
            .collect();
        let mut wq = vec![0i8; w.len()];
        let (mut bq, mut m, mut sh) = (vec![0i32; oc], vec![0i32; oc], vec![0i8; oc]);
        let taps = k * k * 3;
        for o in 0..oc {
            let s_w = w[o * taps..(o + 1) * taps]
                .iter()
                .fold(0f32, |a, v| a.max(v.abs()))
                / 127.0;
            for t in 0..taps {
                wq[o * taps + t] = (w[o * taps + t] / s_w).round() as i8;
            }
            bq[o] = (b[o] / (s_in * s_w)).round() as i32;
            let (mm, ss) = quantize_multiplier((s_in * s_w / s_out) as f64);
            m[o] = mm;
            sh[o] = ss as i8;
        }
        // The reference sees the same quantized inputs and weights, so what is compared is the
        // kernel's integer arithmetic and requantization.
        let xd: Vec<f32> = xq.iter().map(|&q| (q as i32 + 128) as f32 * s_in).collect();
        let wd: Vec<f32> = (0..w.len())
            .map(|i| {
                let o = i / taps;
                let s_w = w[o * taps..(o + 1) * taps]
                    .iter()
                    .fold(0f32, |a, v| a.max(v.abs()))
                    / 127.0;
                wq[i] as f32 * s_w
            })
            .collect();
        let reference = conv_f32(&xd, shape, &wd, &b, oc, k, pad);
        let mut layer = conv_layer(
            shape,
            Shape {
                c: oc as u16,
                ..shape
            },
            k as u8,
            pad as u8,
            (&wq, &bq, &m, &sh),
        );
        layer.input_zero_point = -128;
        layer.output_zero_point = -128;
        let mut out = vec![0i8; shape.h as usize * shape.w as usize * oc];
        conv(&layer, &xq, &mut out);
        for (q, r) in out.iter().zip(&reference) {
            let back = (*q as i32 + 128) as f32 * s_out;
            assert!(
                (back - r).abs() <= s_out * 1.0 + 1e-6,
                "{back} vs {r} (step {s_out})"
            );
        }
    }
}
