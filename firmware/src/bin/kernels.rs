//! The fast kernels against their definitions, on the device itself: the assembly (SMLAD MAC
//! loops, the im2col conversion, the depthwise loop, the requantization loop) runs only on a
//! Cortex-M, so the host's property tests cannot reach it. This binary draws convolution
//! problems from a fixed seed (plain, pointwise, depthwise, and a convolution fused with the
//! 2×2 max pool after it), runs each through the kernel the firmware would pick and through
//! `kernels::reference`, and compares every output byte. It prints one line per kind and exits
//! 0 only when all agree; a mismatch prints the problem.
//!
//! `tests/tests/qemu.rs` runs it on every core in QEMU. On the host this binary only explains
//! that.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
mod check {
    use core::fmt::Write as _;

    use cortex_m_rt::entry;
    use firmware::board::fail;
    use firmware::console::{self, Console};
    use firmware::kernels::{self, reference};
    use firmware::rng::Rng;
    use firmware::{Conv, ConvWeights, FullyConnected, Pool, PoolKind, Shape};

    /// Problems per kind.
    const PROBLEMS: usize = 150;
    /// Largest channel count, side and filter: buffers are sized for them (they must fit the
    /// Cortex-M0's stack beside the kernels').
    const MAX_C: usize = 8;
    const MAX_SIDE: usize = 8;
    const MAX_K: usize = 3;
    const MAX_X: usize = MAX_SIDE * MAX_SIDE * MAX_C;
    /// Most inputs of a fully connected problem (its weights share the convolutions' room).
    const FC_INPUTS: usize = MAX_C * MAX_K * MAX_K;
    /// Padding up to `k − 1` makes an output up to `k − 1` wider than its input.
    const MAX_OUT: usize = (MAX_SIDE + MAX_K - 1) * (MAX_SIDE + MAX_K - 1) * MAX_C;
    /// Most words of packed weights: two per group of four taps of a filter whose rows are
    /// widened to whole words.
    const MAX_PACKED: usize = MAX_C * 2 * MAX_K * (MAX_K * MAX_C).div_ceil(4);

    /// The kinds of problem.
    #[derive(Clone, Copy)]
    enum Kind {
        Plain,
        Pointwise,
        Depthwise,
        ConvMaxPool,
        /// A fully connected layer, checked against the reference convolution of its 1×1
        /// twin (one pixel, `inputs` channels).
        FullyConnected,
    }

    impl Kind {
        fn name(self) -> &'static str {
            match self {
                Kind::Plain => "conv",
                Kind::Pointwise => "pointwise conv",
                Kind::Depthwise => "depthwise conv",
                Kind::ConvMaxPool => "conv + fused max pool",
                Kind::FullyConnected => "fully connected",
            }
        }
    }

    /// One problem's data.
    struct Problem {
        x: [i8; MAX_X],
        weights: [i8; MAX_C * MAX_K * MAX_K * MAX_C],
        packed: [u32; MAX_PACKED],
        bias: [i32; MAX_C],
        multiplier: [i32; MAX_C],
        shift: [i8; MAX_C],
    }

    /// What the kernels write: the fast kernel's, the reference's, and the reference pooled.
    struct Outputs {
        fast: [i8; MAX_OUT],
        slow: [i8; MAX_OUT],
        pooled: [i8; MAX_OUT],
    }

    /// Draws a problem of `kind` into `p`; returns its layer without its arrays (see [`layer`]).
    fn draw(kind: Kind, rng: &mut Rng, p: &mut Problem) -> Conv<'static> {
        let k = match kind {
            Kind::Pointwise | Kind::FullyConnected => 1,
            _ => rng.range(1, MAX_K),
        };
        let (stride, pad) = match kind {
            Kind::Pointwise | Kind::FullyConnected => (1, 0),
            _ => (rng.range(1, 2), rng.range(0, k - 1)),
        };
        // A fully connected layer's inputs fill the weights' room at eight outputs; mostly whole
        // words (the three-row assembly), sometimes not (the pairs).
        let ic = match kind {
            Kind::FullyConnected if rng.range(0, 3) > 0 => 4 * rng.range(1, FC_INPUTS / 4),
            Kind::FullyConnected => rng.range(1, FC_INPUTS),
            _ => rng.range(1, MAX_C),
        };
        let (oc, groups) = match kind {
            Kind::Depthwise => (ic, ic),
            _ => (rng.range(1, MAX_C), 1),
        };
        let (h, w) = match kind {
            Kind::FullyConnected => (1, 1),
            _ => (rng.range(k.max(2), MAX_SIDE), rng.range(k.max(2), MAX_SIDE)),
        };
        let out = |n: usize| (n + 2 * pad - k) / stride + 1;
        let taps = k * k * (ic / groups);
        rng.fill(&mut p.x[..h * w * ic]);
        rng.fill(&mut p.weights[..oc * taps]);
        for ch in 0..oc {
            p.bias[ch] = (rng.word() as i32) >> 18;
            p.multiplier[ch] = (1 << 30) + (rng.word() >> 2) as i32;
            p.shift[ch] = -((rng.word() % 10) as i8) - 1;
        }
        let lo = (rng.word() as i8 % 64).saturating_sub(64);
        let hi = lo.saturating_add((rng.word() as i8) & 127);
        Conv {
            input: Shape {
                h: h as u16,
                w: w as u16,
                c: ic as u16,
            },
            output: Shape {
                h: out(h) as u16,
                w: out(w) as u16,
                c: oc as u16,
            },
            kernel: (k as u8, k as u8),
            stride: (stride as u8, stride as u8),
            padding: (pad as u8, pad as u8),
            dilation: (1, 1),
            groups: groups as u16,
            weights: ConvWeights::Plain(&[]),
            bias: &[],
            multiplier: &[],
            shift: &[],
            input_zero_point: rng.word() as i8,
            output_zero_point: rng.word() as i8,
            act_min: lo,
            act_max: hi,
        }
    }

    /// Whether the firmware runs `geometry` of `kind` with packed weights, as the compiler
    /// packs them for the im2col kernel (a fully connected problem's stay plain).
    fn packs(kind: Kind, geometry: &Conv) -> bool {
        !matches!(kind, Kind::FullyConnected) && geometry.im2col_fits()
    }

    /// Packs `p`'s weights for `geometry` where [`packs`] says so: the compiler's step.
    fn compile(kind: Kind, geometry: &Conv, p: &mut Problem) {
        if packs(kind, geometry) {
            let plain = &p.weights[..geometry.output.c as usize * geometry.taps()];
            geometry.pack(plain, &mut p.packed[..geometry.packed_words()]);
        }
    }

    /// `geometry` with its arrays in `p`.
    fn layer<'p>(kind: Kind, geometry: Conv<'static>, p: &'p Problem) -> Conv<'p> {
        let oc = geometry.output.c as usize;
        Conv {
            weights: match packs(kind, &geometry) {
                true => ConvWeights::Packed(&p.packed[..geometry.packed_words()]),
                false => ConvWeights::Plain(&p.weights[..oc * geometry.taps()]),
            },
            bias: &p.bias[..oc],
            multiplier: &p.multiplier[..oc],
            shift: &p.shift[..oc],
            ..geometry
        }
    }

    /// The 2×2 max pool after `c`.
    fn pool_after(c: &Conv) -> Pool {
        Pool {
            kind: PoolKind::Max,
            input: c.output,
            output: Shape {
                h: c.output.h / 2,
                w: c.output.w / 2,
                c: c.output.c,
            },
            kernel: (2, 2),
            stride: (2, 2),
            padding: (0, 0),
            act_min: i8::MIN,
            act_max: i8::MAX,
        }
    }

    /// Whether the fast kernel and the reference agree on `c` (`None`: the problem does not
    /// apply, a convolution the max pool cannot fuse into).
    fn agree(kind: Kind, c: &Conv, x: &[i8], o: &mut Outputs) -> Option<bool> {
        let n = c.output.len();
        if let Kind::ConvMaxPool = kind {
            let p = pool_after(c);
            if !kernels::fuses(c, &p) {
                return None;
            }
            let m = p.output.len();
            kernels::conv_max_pool(c, &p, x, &mut o.fast[..m]);
            reference::conv(c, x, &mut o.slow[..n]);
            kernels::pool(&p, &o.slow[..n], &mut o.pooled[..m]);
            return Some(o.fast[..m] == o.pooled[..m]);
        }
        match kind {
            Kind::FullyConnected => {
                let ConvWeights::Plain(weights) = c.weights else {
                    return None;
                };
                let fc = FullyConnected {
                    inputs: c.input.c,
                    outputs: c.output.c,
                    weights,
                    bias: c.bias,
                    multiplier: c.multiplier,
                    shift: c.shift,
                    input_zero_point: c.input_zero_point,
                    output_zero_point: c.output_zero_point,
                    act_min: c.act_min,
                    act_max: c.act_max,
                };
                kernels::fully_connected(&fc, x, &mut o.fast[..n]);
            }
            _ => kernels::conv(c, x, &mut o.fast[..n]),
        }
        reference::conv(c, x, &mut o.slow[..n]);
        Some(o.fast[..n] == o.slow[..n])
    }

    #[entry]
    fn main() -> ! {
        let Some(mut out) = Console::stdout() else {
            fail()
        };
        // On the stack, not in statics: the Cortex-M0's statics have 2.5 KiB, its stack 13.5.
        let mut buffers = (
            Problem {
                x: [0; MAX_X],
                weights: [0; MAX_C * MAX_K * MAX_K * MAX_C],
                packed: [0; MAX_PACKED],
                bias: [0; MAX_C],
                multiplier: [0; MAX_C],
                shift: [0; MAX_C],
            },
            Outputs {
                fast: [0; MAX_OUT],
                slow: [0; MAX_OUT],
                pooled: [0; MAX_OUT],
            },
        );
        let (problem, outputs) = (&mut buffers.0, &mut buffers.1);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let kinds = [
            Kind::Plain,
            Kind::Pointwise,
            Kind::Depthwise,
            Kind::ConvMaxPool,
            Kind::FullyConnected,
        ];
        for kind in kinds {
            let mut ran = 0;
            for _ in 0..PROBLEMS {
                let geometry = draw(kind, &mut rng, problem);
                compile(kind, &geometry, problem);
                let c = layer(kind, geometry, problem);
                match agree(kind, &c, &problem.x[..c.input.len()], outputs) {
                    Some(true) => ran += 1,
                    Some(false) => {
                        let _ = writeln!(out, "MISMATCH {}: {geometry:?}", kind.name());
                        out.flush();
                        fail()
                    }
                    None => {}
                }
            }
            let _ = writeln!(out, "{}: {ran} problems bit-exact", kind.name());
        }
        out.flush();
        console::exit(true)
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "the kernel check runs on a Cortex-M: cargo test --release -p ember-tests --test qemu runs it in QEMU"
    );
    std::process::exit(2);
}
