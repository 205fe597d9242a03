//! Kernel tests: hand-computed cases, a float comparison, and randomized layers against a
//! direct transcription of the reference arithmetic.
use super::*;
use crate::model::Shape;
use crate::model::{Conv, ConvWeights, FullyConnected, Pool, PoolKind};
use crate::requant::quantize_multiplier;

const UNIT: i32 = 1 << 30; // multiplier 0.5 at shift 1 = 1.0

/// [`super::conv`] on `layer` as the compiler hands it over (see [`compiled`]).
fn conv(layer: &Conv, x: &[i8], out: &mut [i8]) {
    compiled(layer, |l| super::conv(l, x, out))
}

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
        dilation: (1, 1),
        groups: 1,
        weights: ConvWeights::Plain(w),
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

/// A small deterministic generator for the randomized cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }

    fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }

    fn i8s(&mut self, n: usize) -> std::vec::Vec<i8> {
        (0..n).map(|_| self.next() as i8).collect()
    }
}

/// The reference convolution, into a new vector.
fn conv_reference(l: &Conv, x: &[i8]) -> std::vec::Vec<i8> {
    let mut y = std::vec![0i8; l.output.len()];
    reference::conv(l, x, &mut y);
    y
}

/// The reference max pool (padding excluded from the window).
fn max_pool_reference(p: &Pool, x: &[i8]) -> std::vec::Vec<i8> {
    let (inp, out) = (p.input, p.output);
    let mut y = std::vec::Vec::new();
    for oy in 0..out.h as isize {
        for ox in 0..out.w as isize {
            for c in 0..inp.c as usize {
                let mut m = i8::MIN;
                for ky in 0..p.kernel.0 as isize {
                    for kx in 0..p.kernel.1 as isize {
                        let iy = oy * p.stride.0 as isize - p.padding.0 as isize + ky;
                        let ix = ox * p.stride.1 as isize - p.padding.1 as isize + kx;
                        if iy >= 0 && ix >= 0 && iy < inp.h as isize && ix < inp.w as isize {
                            let at = (iy as usize * inp.w as usize + ix as usize) * inp.c as usize;
                            m = m.max(x[at + c]);
                        }
                    }
                }
                y.push(m.clamp(p.act_min, p.act_max));
            }
        }
    }
    y
}

/// Per-channel requantization parameters: mostly what the quantizer makes (multipliers in
/// [2^30, 2^31), shifts from -12 to -1), sometimes shift 0 or a positive shift.
fn channels(
    rng: &mut Rng,
    oc: usize,
) -> (std::vec::Vec<i32>, std::vec::Vec<i32>, std::vec::Vec<i8>) {
    let bias = (0..oc).map(|_| (rng.next() as i32) >> 18).collect();
    let mult = (0..oc)
        .map(|_| (rng.next() | 0x4000_0000) as i32 & i32::MAX)
        .collect();
    let shift = (0..oc)
        .map(|_| match rng.below(10) {
            0 => 0,
            1 => 1,
            _ => -(rng.below(12) as i8) - 1,
        })
        .collect();
    (bias, mult, shift)
}

#[test]
fn convolutions_match_the_reference_on_random_layers() {
    let mut rng = Rng(7);
    for case in 0..400 {
        let (k, stride, pad) = (
            rng.below(5) as u8 + 1,
            rng.below(2) as u8 + 1,
            rng.below(3) as u8,
        );
        let pad = pad.min(k - 1);
        let ic = [1, 2, 3, 4, 5, 8, 12][rng.below(7) as usize];
        let oc = rng.below(9) as usize + 1;
        let input = Shape {
            h: rng.below(9) as u16 + k as u16,
            w: rng.below(9) as u16 + k as u16,
            c: ic,
        };
        let out_dim = |n: u16| (n as usize + 2 * pad as usize - k as usize) / stride as usize + 1;
        let output = Shape {
            h: out_dim(input.h) as u16,
            w: out_dim(input.w) as u16,
            c: oc as u16,
        };
        let weights = rng.i8s(oc * (k as usize).pow(2) * ic as usize);
        let (bias, mult, shift) = channels(&mut rng, oc);
        let (lo, hi) = (rng.next() as i8, rng.next() as i8);
        let layer = Conv {
            input,
            output,
            kernel: (k, k),
            stride: (stride, stride),
            padding: (pad, pad),
            dilation: (1, 1),
            groups: 1,
            weights: ConvWeights::Plain(&weights),
            bias: &bias,
            multiplier: &mult,
            shift: &shift,
            input_zero_point: rng.next() as i8,
            output_zero_point: rng.next() as i8,
            act_min: lo.min(hi),
            act_max: lo.max(hi),
        };
        let x = rng.i8s(input.len());
        let mut y = std::vec![0i8; output.len()];
        conv(&layer, &x, &mut y);
        assert_eq!(y, conv_reference(&layer, &x), "case {case}: {layer:?}");
    }
}

/// The packed form holds the plain weights: read back tap by tap they are the same, and the
/// taps it adds (widened rows, the last group's padding) are zero.
#[test]
fn packed_weights_read_back_as_the_plain_ones() {
    let mut rng = Rng(29);
    for case in 0..200 {
        let kernel = (rng.below(5) as u8 + 1, rng.below(10) as u8 + 1);
        let ic = [1u16, 2, 3, 4, 5, 8, 23][rng.below(7) as usize];
        let oc = rng.below(5) as usize + 1;
        let input = Shape {
            h: 12,
            w: 12,
            c: ic,
        };
        let output = Shape {
            h: 13 - kernel.0 as u16,
            w: 13 - kernel.1 as u16,
            c: oc as u16,
        };
        let (bias, mult, shift) = channels(&mut rng, oc);
        let plain = rng.i8s(oc * kernel.0 as usize * kernel.1 as usize * ic as usize);
        let layer = Conv {
            kernel,
            ..conv_layer(input, output, 1, 0, (&plain, &bias, &mult, &shift))
        };
        if !layer.im2col_fits() {
            continue;
        }
        let mut words = std::vec![0u32; layer.packed_words()];
        layer.pack(&plain, &mut words);
        let packed = Conv {
            weights: ConvWeights::Packed(&words),
            ..layer
        };
        let taps = layer.taps();
        for (i, &w) in plain.iter().enumerate() {
            assert_eq!(packed.weight(i / taps, i % taps), w, "case {case}: {i}");
        }
        let magnitude = |v: &mut dyn Iterator<Item = i32>| v.map(i32::abs).sum::<i32>();
        let halves = words
            .iter()
            .flat_map(|w| [*w as i16 as i32, (*w >> 16) as i16 as i32]);
        assert_eq!(
            magnitude(&mut halves.into_iter()),
            magnitude(&mut plain.iter().map(|&w| w as i32)),
            "case {case}: the added taps are zero"
        );
    }
}

/// A kernel row of 5 × 23 = 115 taps, widened to 116, would make a filter of 580 taps, more
/// than one im2col block holds: the widening once left no pixel per tile and panicked.
#[test]
fn a_filter_widened_past_max_taps_is_not_widened() {
    let mut rng = Rng(13);
    let input = Shape { h: 6, w: 5, c: 23 };
    let output = Shape { h: 2, w: 1, c: 1 };
    let weights = rng.i8s(5 * 5 * 23);
    let (bias, mult, shift) = channels(&mut rng, 1);
    let layer = Conv {
        input,
        output,
        kernel: (5, 5),
        stride: (1, 1),
        padding: (0, 0),
        dilation: (1, 1),
        groups: 1,
        weights: ConvWeights::Plain(&weights),
        bias: &bias,
        multiplier: &mult,
        shift: &shift,
        input_zero_point: 3,
        output_zero_point: -2,
        act_min: -128,
        act_max: 127,
    };
    let x = rng.i8s(input.len());
    let mut y = [0i8; 2];
    conv(&layer, &x, &mut y);
    assert_eq!(y[..], conv_reference(&layer, &x)[..]);
}

#[test]
fn conv_fused_with_max_pool_matches_conv_then_pool() {
    let mut rng = Rng(11);
    let mut fused_cases = 0;
    for case in 0..300 {
        let ic = [1, 3, 4, 8][rng.below(4) as usize];
        let oc = rng.below(7) as usize + 1;
        let input = Shape {
            h: rng.below(10) as u16 + 2,
            w: rng.below(10) as u16 + 2,
            c: ic,
        };
        let output = Shape {
            c: oc as u16,
            ..input
        };
        let weights = rng.i8s(oc * 9 * ic as usize);
        let (bias, mult, shift) = channels(&mut rng, oc);
        let conv_layer = Conv {
            input,
            output,
            kernel: (3, 3),
            stride: (1, 1),
            padding: (1, 1),
            dilation: (1, 1),
            groups: 1,
            weights: ConvWeights::Plain(&weights),
            bias: &bias,
            multiplier: &mult,
            shift: &shift,
            input_zero_point: rng.next() as i8,
            output_zero_point: rng.next() as i8,
            act_min: if rng.below(2) == 0 {
                -128
            } else {
                rng.next() as i8 / 2
            },
            act_max: 127,
        };
        let pool_layer = Pool {
            kind: PoolKind::Max,
            input: output,
            output: Shape {
                h: output.h / 2,
                w: output.w / 2,
                c: oc as u16,
            },
            kernel: (2, 2),
            stride: (2, 2),
            padding: (0, 0),
            act_min: if rng.below(2) == 0 {
                -128
            } else {
                rng.next() as i8 / 4
            },
            act_max: if rng.below(2) == 0 { 127 } else { 100 },
        };
        if pool_layer.output.h == 0 || pool_layer.output.w == 0 {
            continue;
        }
        let fused = compiled(&conv_layer, |c| fuses(c, &pool_layer));
        assert!(fused, "case {case}");
        fused_cases += 1;
        let x = rng.i8s(input.len());
        let mut conv_out = std::vec![0i8; output.len()];
        conv(&conv_layer, &x, &mut conv_out);
        let want = max_pool_reference(&pool_layer, &conv_out);
        let mut got = std::vec![0i8; pool_layer.output.len()];
        compiled(&conv_layer, |c| conv_max_pool(c, &pool_layer, &x, &mut got));
        assert_eq!(got, want, "case {case}");
        let mut pooled = std::vec![0i8; pool_layer.output.len()];
        pool(&pool_layer, &conv_out, &mut pooled);
        assert_eq!(pooled, want, "case {case}: pool kernel");
    }
    assert!(fused_cases > 200);
}

#[test]
fn max_pools_match_the_reference_on_random_layers() {
    let mut rng = Rng(5);
    for case in 0..300 {
        let c = rng.below(11) as u16 + 1;
        let (k, stride) = (rng.below(3) as u8 + 1, rng.below(3) as u8 + 1);
        let pad = rng.below(k as u32) as u8;
        let input = Shape {
            h: rng.below(8) as u16 + k as u16,
            w: rng.below(8) as u16 + k as u16,
            c,
        };
        let out_dim = |n: u16| (n as usize + 2 * pad as usize - k as usize) / stride as usize + 1;
        let (lo, hi) = (rng.next() as i8, rng.next() as i8);
        let layer = Pool {
            kind: PoolKind::Max,
            input,
            output: Shape {
                h: out_dim(input.h) as u16,
                w: out_dim(input.w) as u16,
                c,
            },
            kernel: (k, k),
            stride: (stride, stride),
            padding: (pad, pad),
            act_min: lo.min(hi),
            act_max: lo.max(hi),
        };
        let x = rng.i8s(input.len());
        let mut y = std::vec![0i8; layer.output.len()];
        pool(&layer, &x, &mut y);
        assert_eq!(y, max_pool_reference(&layer, &x), "case {case}: {layer:?}");
    }
}

#[test]
fn fully_connected_matches_the_reference_on_random_layers() {
    let mut rng = Rng(3);
    for case in 0..300 {
        let (inputs, outputs) = (rng.below(70) as usize + 1, rng.below(12) as usize + 1);
        let weights = rng.i8s(inputs * outputs);
        let (bias, mult, shift) = channels(&mut rng, outputs);
        let layer = FullyConnected {
            inputs: inputs as u16,
            outputs: outputs as u16,
            weights: &weights,
            bias: &bias,
            multiplier: &mult,
            shift: &shift,
            input_zero_point: rng.next() as i8,
            output_zero_point: rng.next() as i8,
            act_min: -128,
            act_max: 127,
        };
        let x = rng.i8s(inputs);
        let mut y = std::vec![0i8; outputs];
        fully_connected(&layer, &x, &mut y);
        let want: std::vec::Vec<i8> = (0..outputs)
            .map(|o| {
                let acc = (0..inputs).fold(bias[o], |a, i| {
                    a + (x[i] as i32 - layer.input_zero_point as i32)
                        * weights[o * inputs + i] as i32
                });
                crate::requant::requantize(
                    acc,
                    mult[o],
                    shift[o],
                    layer.output_zero_point,
                    -128,
                    127,
                )
            })
            .collect();
        assert_eq!(y, want, "case {case}");
    }
}

/// Inputs whose padded copy does not fit the gather's buffer take the window-by-window path:
/// it must give the same bits as the reference too.
#[test]
fn convolutions_too_large_to_pad_match_the_reference() {
    let mut rng = Rng(17);
    for case in 0..12 {
        let ic = [4u16, 8][rng.below(2) as usize];
        let input = Shape {
            h: rng.below(8) as u16 + 24,
            w: rng.below(8) as u16 + 24,
            c: ic,
        };
        let output = Shape { c: 3, ..input };
        let weights = rng.i8s(3 * 9 * ic as usize);
        let (bias, mult, shift) = channels(&mut rng, 3);
        let layer = Conv {
            input_zero_point: rng.next() as i8,
            ..conv_layer(input, output, 3, 1, (&weights, &bias, &mult, &shift))
        };
        assert!(
            input.len() > 2048,
            "case {case}: the input must not fit the padded copy"
        );
        let x = rng.i8s(input.len());
        let mut y = std::vec![0i8; output.len()];
        conv(&layer, &x, &mut y);
        assert_eq!(y, conv_reference(&layer, &x), "case {case}");
    }
}

/// Windows that lie wholly in the left padding (padding wider than the filter, as a model
/// file may ask): the padded copy holds no input byte, and the result is the reference's.
/// A mutated model file found the kernel slicing past its copy here.
#[test]
fn windows_wholly_in_the_padding_match_the_reference() {
    let mut rng = Rng(23);
    for (pad, out) in [
        ((0u8, 2u8), (1u16, 1u16)),
        ((1, 5), (2, 3)),
        ((0, 9), (2, 1)),
    ] {
        let input = Shape { h: 2, w: 2, c: 4 };
        let output = Shape {
            h: out.0,
            w: out.1,
            c: 3,
        };
        let weights = rng.i8s(3 * 4);
        let (bias, mult, shift) = channels(&mut rng, 3);
        let layer = Conv {
            padding: pad,
            input_zero_point: rng.next() as i8,
            ..conv_layer(input, output, 1, 0, (&weights, &bias, &mult, &shift))
        };
        assert!(layer.output.w > 0 && crate::model::Layer::Conv(layer).check());
        let x = rng.i8s(input.len());
        let mut y = std::vec![0i8; output.len()];
        conv(&layer, &x, &mut y);
        assert_eq!(y, conv_reference(&layer, &x), "padding {pad:?}");
    }
}
