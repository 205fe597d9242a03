//! The int8 kernels on HWC tensors. Callers (`model::run`) check every shape first, so the
//! kernels index freely; the inner loops run over zipped slices, which compile without bounds
//! checks.

use crate::model::{Conv, FullyConnected, Pool, PoolKind};
use crate::requant::multiply_by_quantized_multiplier;

/// Requantizes an accumulator for output channel `c` and clamps it to the fused activation.
#[inline(always)]
fn requantize(acc: i32, multiplier: i32, shift: i8, zero_point: i32, min: i8, max: i8) -> i8 {
    let v = multiply_by_quantized_multiplier(acc, multiplier, shift as i32) + zero_point;
    v.clamp(min as i32, max as i32) as i8
}

/// Largest `kh · kw · in_c` a convolution may have (the im2col column lives on the stack).
pub const MAX_TAPS: usize = 1152;
/// Largest number of output channels of a convolution.
pub const MAX_CHANNELS: usize = 256;

/// `Σ x · w` over two equal-length int8 slices.
#[inline(always)]
fn dot(x: &[i8], w: &[i8]) -> i32 {
    let (xs, ws) = (x.chunks_exact(4), w.chunks_exact(4));
    let tail: i32 = xs
        .remainder()
        .iter()
        .zip(ws.remainder())
        .map(|(&a, &b)| a as i32 * b as i32)
        .sum();
    xs.zip(ws).fold(tail, |acc, (a, b)| dot4(acc, a, b))
}

/// `acc + Σ a[i] · b[i]` over four lanes: two SMLADs on a Cortex-M4/M7 (DSP extension).
#[cfg(ember_dsp)]
#[inline(always)]
fn dot4(acc: i32, a: &[i8], b: &[i8]) -> i32 {
    let word = |v: &[i8]| u32::from_le_bytes([v[0] as u8, v[1] as u8, v[2] as u8, v[3] as u8]);
    let (a, b) = (word(a), word(b));
    let mut acc = acc;
    // SAFETY: SXTB16 and SMLAD are register-only DSP instructions (no memory, no flags written
    // that Rust relies on); both exist on every ARMv7E-M core (build.rs sets `ember_dsp` only for those targets). SXTB16 sign-extends
    // bytes 0 and 2 (or 1 and 3 after ROR #8) into halfwords, and SMLAD adds both 16×16 products
    // to the accumulator exactly, so the result equals the portable sum bit for bit.
    unsafe {
        core::arch::asm!(
            "sxtb16 {a_even}, {a}",
            "sxtb16 {b_even}, {b}",
            "sxtb16 {a_odd}, {a}, ror #8",
            "sxtb16 {b_odd}, {b}, ror #8",
            "smlad {acc}, {a_even}, {b_even}, {acc}",
            "smlad {acc}, {a_odd}, {b_odd}, {acc}",
            a = in(reg) a,
            b = in(reg) b,
            a_even = out(reg) _,
            b_even = out(reg) _,
            a_odd = out(reg) _,
            b_odd = out(reg) _,
            acc = inout(reg) acc,
            options(pure, nomem, nostack),
        );
    }
    acc
}

/// `acc + Σ a[i] · b[i]` over four lanes, portable.
#[cfg(not(ember_dsp))]
#[inline(always)]
fn dot4(acc: i32, a: &[i8], b: &[i8]) -> i32 {
    acc + a[0] as i32 * b[0] as i32
        + a[1] as i32 * b[1] as i32
        + a[2] as i32 * b[2] as i32
        + a[3] as i32 * b[3] as i32
}

/// Bias plus the input offset's share, `bias + x_offset · Σ w`, per filter: with it folded in,
/// the inner loop is a plain `Σ x · w` (TFLite Micro folds the same term).
fn effective_bias(weights: &[i8], bias: &[i32], taps: usize, x_offset: i32, out: &mut [i32]) {
    for ((e, &b), filter) in out.iter_mut().zip(bias).zip(weights.chunks_exact(taps)) {
        *e = b + x_offset * filter.iter().map(|&w| w as i32).sum::<i32>();
    }
}

/// 2-D convolution, weights `[out_c][kh][kw][in_c]`, zero padding (the input zero point).
///
/// Each output pixel's receptive field is gathered once into a column (im2col, padding filled
/// with the input zero point, which the folded bias cancels), then every filter is one dot
/// product over it.
pub fn conv(layer: &Conv, input: &[i8], output: &mut [i8]) {
    let (inp, out) = (layer.input, layer.output);
    let (kh, kw, ic) = (
        layer.kernel.0 as usize,
        layer.kernel.1 as usize,
        inp.c as usize,
    );
    let taps = kh * kw * ic;
    let oc = out.c as usize;
    let mut bias = [0i32; MAX_CHANNELS];
    effective_bias(
        layer.weights,
        layer.bias,
        taps,
        -(layer.input_zero_point as i32),
        &mut bias[..oc],
    );
    let mut column = [layer.input_zero_point; MAX_TAPS];
    let column = &mut column[..taps];
    let row_len = inp.w as usize * ic;
    for (pixel, out_px) in output.chunks_exact_mut(oc).enumerate() {
        let (oy, ox) = (pixel / out.w as usize, pixel % out.w as usize);
        let y0 = (oy * layer.stride.0 as usize) as isize - layer.padding.0 as isize;
        let x0 = (ox * layer.stride.1 as usize) as isize - layer.padding.1 as isize;
        for (ky, col_row) in column.chunks_exact_mut(kw * ic).enumerate() {
            let iy = y0 + ky as isize;
            if iy < 0 || iy >= inp.h as isize {
                col_row.fill(layer.input_zero_point);
                continue;
            }
            let kx_start = (-x0).clamp(0, kw as isize) as usize;
            let kx_end = (inp.w as isize - x0).clamp(0, kw as isize) as usize;
            if kx_start >= kx_end {
                col_row.fill(layer.input_zero_point);
                continue;
            }
            col_row[..kx_start * ic].fill(layer.input_zero_point);
            col_row[kx_end * ic..].fill(layer.input_zero_point);
            let at = iy as usize * row_len + (x0 + kx_start as isize) as usize * ic;
            col_row[kx_start * ic..kx_end * ic]
                .copy_from_slice(&input[at..at + (kx_end - kx_start) * ic]);
        }
        let filters = out_px
            .iter_mut()
            .zip(layer.weights.chunks_exact(taps))
            .enumerate();
        for (c, (o, filter)) in filters {
            let acc = bias[c] + dot(column, filter);
            *o = requantize(
                acc,
                layer.multiplier[c],
                layer.shift[c],
                layer.output_zero_point as i32,
                layer.act_min,
                layer.act_max,
            );
        }
    }
}

/// Fully connected layer, weights `[outputs][inputs]`.
pub fn fully_connected(layer: &FullyConnected, input: &[i8], output: &mut [i8]) {
    let x_offset = -(layer.input_zero_point as i32);
    let inputs = layer.inputs as usize;
    for (o, (row, out)) in layer
        .weights
        .chunks_exact(inputs)
        .zip(output.iter_mut())
        .enumerate()
    {
        let weight_sum: i32 = row.iter().map(|&w| w as i32).sum();
        let acc = layer.bias[o] + x_offset * weight_sum + dot(&input[..inputs], row);
        *out = requantize(
            acc,
            layer.multiplier[o],
            layer.shift[o],
            layer.output_zero_point as i32,
            layer.act_min,
            layer.act_max,
        );
    }
}

/// Max or average pooling; padded positions are left out of both (ONNX's default).
pub fn pool(layer: &Pool, input: &[i8], output: &mut [i8]) {
    let (inp, out) = (layer.input, layer.output);
    let c = inp.c as usize;
    let mut o = 0;
    for oy in 0..out.h as usize {
        for ox in 0..out.w as usize {
            let y0 = (oy * layer.stride.0 as usize) as isize - layer.padding.0 as isize;
            let x0 = (ox * layer.stride.1 as usize) as isize - layer.padding.1 as isize;
            let ys = y0.max(0) as usize
                ..((y0 + layer.kernel.0 as isize).min(inp.h as isize)).max(0) as usize;
            let xs = x0.max(0) as usize
                ..((x0 + layer.kernel.1 as isize).min(inp.w as isize)).max(0) as usize;
            let count = (ys.len() * xs.len()) as i32;
            for ch in 0..c {
                let mut max = i8::MIN as i32;
                let mut sum = 0i32;
                for y in ys.clone() {
                    for x in xs.clone() {
                        let v = input[(y * inp.w as usize + x) * c + ch] as i32;
                        max = max.max(v);
                        sum += v;
                    }
                }
                let v = match layer.kind {
                    PoolKind::Max => max,
                    // TFLite's rounding: half away from zero.
                    PoolKind::Average if count == 0 => 0,
                    PoolKind::Average if sum >= 0 => (sum + count / 2) / count,
                    PoolKind::Average => (sum - count / 2) / count,
                };
                output[o] = v.clamp(layer.act_min as i32, layer.act_max as i32) as i8;
                o += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Shape;
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
