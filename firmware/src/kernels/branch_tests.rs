//! The kernels graph models add: grouped, depthwise and dilated convolutions against the
//! reference loops and against the plain kernel, and Add and Concat against float arithmetic.

use proptest::prelude::*;
use std::vec::Vec;

use super::*;
use crate::model::{Add, Concat, ConcatPart, Conv, ConvWeights, Rescale, Shape};
use crate::rng::Rng;

/// A convolution problem: geometry and data, from which a [`Conv`] is viewed.
#[derive(Debug, Clone)]
struct ConvProblem {
    input: Shape,
    output: Shape,
    kernel: u8,
    stride: u8,
    padding: u8,
    dilation: u8,
    groups: u16,
    weights: Vec<i8>,
    bias: Vec<i32>,
    multiplier: Vec<i32>,
    shift: Vec<i8>,
    zero_points: (i8, i8),
    clamp: (i8, i8),
    x: Vec<i8>,
}

impl ConvProblem {
    fn layer(&self) -> Conv<'_> {
        Conv {
            input: self.input,
            output: self.output,
            kernel: (self.kernel, self.kernel),
            stride: (self.stride, self.stride),
            padding: (self.padding, self.padding),
            dilation: (self.dilation, self.dilation),
            groups: self.groups,
            weights: ConvWeights::Plain(&self.weights),
            bias: &self.bias,
            multiplier: &self.multiplier,
            shift: &self.shift,
            input_zero_point: self.zero_points.0,
            output_zero_point: self.zero_points.1,
            act_min: self.clamp.0,
            act_max: self.clamp.1,
        }
    }

    fn run(&self, kernel: fn(&Conv, &[i8], &mut [i8])) -> Vec<i8> {
        let mut y = std::vec![0i8; self.output.len()];
        compiled(&self.layer(), |l| kernel(l, &self.x, &mut y));
        y
    }
}

/// Problems with `groups` groups of `per_group` input channels and `multiplier` output
/// channels per input channel of a group.
fn problems(depthwise: bool) -> impl Strategy<Value = ConvProblem> {
    let shape = (1u16..6, 1u16..4, 1u16..4, 1u8..4, 1u8..3, 0u8..3, 1u8..3);
    // Depthwise: up to 70 channels (runs of 32 and a tail not a multiple of 4), filters up to
    // 6×6 (past the fast path's 25 taps).
    let depthwise_shape = (1u16..70, 1u8..7);
    (shape, depthwise_shape, 3u16..10, 3u16..10, any::<u64>()).prop_filter_map(
        "the window fits",
        move |((groups, per_group, mult, k, stride, pad, dilation), wide, h, w, seed)| {
            let (groups, per_group, dilation, k) = if depthwise {
                (wide.0, 1, 1, wide.1)
            } else {
                (groups, per_group, dilation, k)
            };
            let span = (k as u16 - 1) * dilation as u16 + 1;
            let pad = pad.min(k - 1);
            if span > h + 2 * pad as u16 || span > w + 2 * pad as u16 {
                return None;
            }
            let out = |n: u16| (n + 2 * pad as u16 - span) / stride as u16 + 1;
            let ic = groups * per_group;
            let oc = groups * mult;
            let mut rng = Rng(seed | 1);
            let taps = k as usize * k as usize * per_group as usize;
            let (bias, multiplier, shift) = rng.channels(oc as usize);
            let lo = rng.word() as i8 % 64 - 64;
            Some(ConvProblem {
                input: Shape { h, w, c: ic },
                output: Shape {
                    h: out(h),
                    w: out(w),
                    c: oc,
                },
                kernel: k,
                stride,
                padding: pad,
                dilation,
                groups,
                weights: rng.i8s(oc as usize * taps),
                bias,
                multiplier,
                shift,
                zero_points: (rng.word() as i8, rng.word() as i8),
                clamp: (lo, lo.saturating_add(rng.word() as i8 & 127)),
                x: rng.i8s(h as usize * w as usize * ic as usize),
            })
        },
    )
}

impl Rng {
    fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.word() as i8).collect()
    }

    /// Biases, multipliers in [2^30, 2^31) and shifts as the quantizer makes them.
    fn channels(&mut self, n: usize) -> (Vec<i32>, Vec<i32>, Vec<i8>) {
        let bias = (0..n).map(|_| (self.word() as i32) >> 18).collect();
        let mult = (0..n)
            .map(|_| (self.word() | 0x4000_0000) as i32 & i32::MAX)
            .collect();
        let shift = (0..n).map(|_| -((self.word() % 10) as i8) - 1).collect();
        (bias, mult, shift)
    }
}

proptest! {
    /// The depthwise kernel equals the reference for any channel multiplier, stride and
    /// padding.
    #[test]
    fn depthwise_equals_the_reference(p in problems(true)) {
        prop_assert!(p.layer().is_depthwise() || p.groups == 1);
        prop_assert_eq!(p.run(conv), p.run(reference::conv));
    }

    /// A grouped convolution is its groups run as plain convolutions (the im2col kernel) on
    /// their own channels, side by side.
    #[test]
    fn a_grouped_conv_is_its_groups_side_by_side(p in problems(false)) {
        let p = ConvProblem { dilation: 1, ..p };
        let p = ConvProblem { output: Shape { ..p.output }, ..p };
        let got = p.run(conv);
        let (g, ic, oc) = (p.groups as usize, p.input.c as usize, p.output.c as usize);
        let (gi, go) = (ic / g, oc / g);
        let taps = p.weights.len() / oc;
        let mut want = std::vec![0i8; p.output.len()];
        for group in 0..g {
            let slice = |v: &[i8], n: usize| -> Vec<i8> {
                v.chunks_exact(n).flat_map(|px| px[group * n / g..(group + 1) * n / g].to_vec()).collect()
            };
            let part = ConvProblem {
                input: Shape { c: gi as u16, ..p.input },
                output: Shape { c: go as u16, ..p.output },
                groups: 1,
                weights: p.weights[group * go * taps..(group + 1) * go * taps].to_vec(),
                bias: p.bias[group * go..(group + 1) * go].to_vec(),
                multiplier: p.multiplier[group * go..(group + 1) * go].to_vec(),
                shift: p.shift[group * go..(group + 1) * go].to_vec(),
                x: slice(&p.x, ic),
                ..p.clone()
            };
            let y = part.run(conv);
            for (dst, src) in want.chunks_exact_mut(oc).zip(y.chunks_exact(go)) {
                dst[group * go..(group + 1) * go].copy_from_slice(src);
            }
        }
        prop_assert_eq!(got, want);
    }

    /// A dilated convolution is a plain one whose kernel has zeros between its taps.
    #[test]
    fn a_dilated_conv_is_a_kernel_with_holes(p in problems(false)) {
        let p = ConvProblem { groups: 1, output: p.output, ..p };
        let (ic, oc) = (p.input.c as usize, p.output.c as usize);
        let p = ConvProblem {
            weights: p.weights.iter().copied().cycle().take(oc * (p.kernel as usize).pow(2) * ic).collect(),
            ..p
        };
        let (k, d) = (p.kernel as usize, p.dilation as usize);
        let wide = (k - 1) * d + 1;
        let mut weights = std::vec![0i8; oc * wide * wide * ic];
        for o in 0..oc {
            for ky in 0..k {
                for kx in 0..k {
                    let from = ((o * k + ky) * k + kx) * ic;
                    let to = ((o * wide + ky * d) * wide + kx * d) * ic;
                    weights[to..to + ic].copy_from_slice(&p.weights[from..from + ic]);
                }
            }
        }
        let plain = ConvProblem {
            kernel: wide as u8,
            dilation: 1,
            weights,
            ..p.clone()
        };
        prop_assume!(plain.layer().im2col_fits());
        prop_assert_eq!(p.run(conv), plain.run(conv));
    }

    /// Add is within one step of the float sum of the two dequantized inputs.
    #[test]
    fn add_is_the_float_sum_within_one_step(
        scales in (0.001f32..1.0, 0.001f32..1.0, 0.001f32..2.0),
        zps in any::<(i8, i8, i8)>(),
        x in proptest::collection::vec(any::<(i8, i8)>(), 1..64),
    ) {
        let shape = Shape { h: 1, w: 1, c: x.len() as u16 };
        let a = Add::from_scales(shape, [(scales.0, zps.0), (scales.1, zps.1)], (scales.2, zps.2), (-128, 127));
        let (p, q): (Vec<i8>, Vec<i8>) = x.iter().copied().unzip();
        let mut out = std::vec![0i8; x.len()];
        add(&a, &p, &q, &mut out);
        for ((&p, &q), &o) in p.iter().zip(&q).zip(&out) {
            let real = (p as f32 - zps.0 as f32) * scales.0 + (q as f32 - zps.1 as f32) * scales.1;
            let want = (real / scales.2 + zps.2 as f32).round().clamp(-128.0, 127.0);
            prop_assert!((o as f32 - want).abs() <= 1.0, "{} for {}", o, want);
        }
    }

    /// The Add kernel (its tables past 512 values) equals the reference, element by element.
    #[test]
    fn add_equals_the_reference(
        scales in (0.001f32..1.0, 0.001f32..1.0, 0.001f32..2.0),
        zps in any::<(i8, i8, i8)>(),
        clamp in any::<(i8, i8)>(),
        len in 1usize..1500,
        seed in any::<u64>(),
    ) {
        let (lo, hi) = (clamp.0.min(clamp.1), clamp.0.max(clamp.1));
        let shape = Shape { h: 1, w: 1, c: len as u16 };
        let a = Add::from_scales(shape, [(scales.0, zps.0), (scales.1, zps.1)], (scales.2, zps.2), (lo, hi));
        let mut rng = Rng(seed | 1);
        let (p, q) = (rng.i8s(len), rng.i8s(len));
        let (mut fast, mut slow) = (std::vec![0i8; len], std::vec![0i8; len]);
        add(&a, &p, &q, &mut fast);
        reference::add(&a, &p, &q, &mut slow);
        prop_assert_eq!(fast, slow);
    }

    /// Concat puts each input's channels in place, rescaled within one step of float, and
    /// copies an input already at the output's quantization.
    #[test]
    fn concat_places_and_rescales_its_inputs(
        scale in 0.001f32..1.0,
        zps in any::<(i8, i8)>(),
        pixels in 1usize..9,
        seed in any::<u64>(),
    ) {
        let mut rng = Rng(seed | 1);
        let (a, b) = (rng.i8s(pixels * 3), rng.i8s(pixels * 2));
        let parts = [
            ConcatPart { channels: 3, rescale: Rescale::between(scale, zps.0, 0.05) },
            ConcatPart { channels: 2, rescale: Rescale::identity(zps.1) },
        ];
        let c = Concat { output: Shape { h: 1, w: pixels as u16, c: 5 }, parts: &parts, output_zero_point: zps.1 };
        let mut out = std::vec![0i8; pixels * 5];
        concat(&c, &[&a, &b], &mut out);
        for (px, o) in out.chunks_exact(5).enumerate() {
            prop_assert_eq!(&o[3..], &b[px * 2..px * 2 + 2]);
            for (ch, &q) in o[..3].iter().enumerate() {
                let real = (a[px * 3 + ch] as f32 - zps.0 as f32) * scale;
                let want = (real / 0.05 + zps.1 as f32).round().clamp(-128.0, 127.0);
                prop_assert!((q as f32 - want).abs() <= 1.0, "{} for {}", q, want);
            }
        }
    }
}
