//! Depthwise convolution: each output channel reads one input channel (`groups` = input
//! channels).
//!
//! The fast path (channel multiplier 1, at most [`MAX_TAPS`] taps) works on four channels at
//! once, as CMSIS-NN's `arm_depthwise_conv_s8_opt`: in HWC, one word load gives four channels
//! of an input pixel, and the four channels' weights are laid out once per call as one word
//! per tap. For a window inside the input the zero point is taken out once per channel,
//! `Σ (x − z)·w = Σ x·w − z·Σ w`, and four accumulators stay in registers (SMLABB/SMLATT on
//! the M4F); a window reaching into the padding takes plain loops.

use crate::model::{Conv, ConvWeights};

/// Most taps (`kh · kw`) the fast path takes: 5×5. Its layout of taps, 8 bytes each, lives on
/// the stack.
pub(crate) const MAX_TAPS: usize = 25;

/// Depthwise convolution without dilation; equals [`super::reference::conv`] bit for bit.
pub fn depthwise(l: &Conv, x: &[i8], out: &mut [i8]) {
    let taps = l.kernel.0 as usize * l.kernel.1 as usize;
    let ConvWeights::Plain(weights) = l.weights else {
        return;
    };
    if l.output.c == l.input.c && taps <= MAX_TAPS {
        by_four(l, weights, x, out)
    } else {
        any_multiplier(l, weights, x, out)
    }
}

/// Output pixels whose sums wait together for requantization (one channel's run at a time).
const PIXELS: usize = 32;

/// The fast path: multiplier 1, four channels at a time. Per group of four, the weights and
/// each interior tap's offset from the window's corner are laid out once as `(offset, word)`
/// pairs; each pixel then runs one loop over them, and a run of [`PIXELS`] sums is
/// requantized per channel.
fn by_four(l: &Conv, weights: &[i8], x: &[i8], out: &mut [i8]) {
    let (inp, o, c) = (l.input, l.output, l.input.c as usize);
    let (kh, kw) = (l.kernel.0 as usize, l.kernel.1 as usize);
    let taps = kh * kw;
    let mut laid = [(0i32, 0u32); MAX_TAPS];
    for (t, pair) in laid.iter_mut().enumerate().take(taps) {
        pair.0 = (((t / kw) * inp.w as usize + t % kw) * c) as i32;
    }
    let mut sums = [[0i32; PIXELS]; 4];
    let pixels = o.h as usize * o.w as usize;
    if pixels == 0 {
        return;
    }
    for ch0 in (0..c - c % 4).step_by(4) {
        let filters = &weights[ch0 * taps..(ch0 + 4) * taps];
        for (t, pair) in laid.iter_mut().enumerate().take(taps) {
            pair.1 = u32::from_le_bytes(core::array::from_fn(|k| filters[k * taps + t] as u8));
        }
        let requant: [_; 4] = core::array::from_fn(|k| l.channel(ch0 + k));
        // Σ (x − z)·w = Σ x·w − z·Σ w over a window that lies inside the input.
        let start: [i32; 4] = core::array::from_fn(|k| {
            let w: i32 = filters[k * taps..(k + 1) * taps]
                .iter()
                .map(|&w| w as i32)
                .sum();
            requant[k]
                .bias()
                .wrapping_sub(l.input_zero_point as i32 * w)
        });
        let mut m = 0;
        for (p, (oy, ox)) in (0..o.h as usize)
            .flat_map(|oy| (0..o.w as usize).map(move |ox| (oy, ox)))
            .enumerate()
        {
            let (acc, start) = match corner(l, oy, ox) {
                Some(at) => (mac4(x, at * c + ch0, &laid[..taps]), start),
                None => (
                    border(l, x, (oy, ox), ch0, &laid),
                    requant.map(|r| r.bias()),
                ),
            };
            for ((sum, a), s) in sums.iter_mut().zip(acc).zip(start) {
                sum[m] = a.wrapping_add(s);
            }
            m += 1;
            if m == PIXELS || p + 1 == pixels {
                let p0 = p + 1 - m;
                for (k, r) in requant.iter().enumerate() {
                    r.apply_strided(&sums[k][..m], &mut out[p0 * c + ch0 + k..], c);
                }
                m = 0;
            }
        }
    }
    if c % 4 != 0 {
        any_multiplier_channels(l, weights, x, out, c - c % 4);
    }
}

/// The input pixel at the top-left of output pixel `(oy, ox)`'s window, when the whole window
/// lies inside the input.
#[inline(always)]
fn corner(l: &Conv, oy: usize, ox: usize) -> Option<usize> {
    let y0 = (oy * l.stride.0 as usize).checked_sub(l.padding.0 as usize)?;
    let x0 = (ox * l.stride.1 as usize).checked_sub(l.padding.1 as usize)?;
    let inside = y0 + l.kernel.0 as usize <= l.input.h as usize
        && x0 + l.kernel.1 as usize <= l.input.w as usize;
    inside.then_some(y0 * l.input.w as usize + x0)
}

/// `Σ (x − z)·w` of channels `ch0..ch0 + 4` for a window that reaches into the padding: the
/// taps inside the input, with the weight words of `laid`.
fn border(
    l: &Conv,
    x: &[i8],
    (oy, ox): (usize, usize),
    ch0: usize,
    laid: &[(i32, u32)],
) -> [i32; 4] {
    let (inp, c, kw) = (l.input, l.input.c as usize, l.kernel.1 as usize);
    let z = l.input_zero_point as i32;
    let y0 = (oy * l.stride.0 as usize) as isize - l.padding.0 as isize;
    let x0 = (ox * l.stride.1 as usize) as isize - l.padding.1 as isize;
    // The taps inside the input: rows ky0..ky1, columns kx0..kx1.
    let inside = |start: isize, k: usize, n: u16| {
        (
            (-start).max(0) as usize,
            (n as isize - start).clamp(0, k as isize) as usize,
        )
    };
    let (ky0, ky1) = inside(y0, l.kernel.0 as usize, inp.h);
    let (kx0, kx1) = inside(x0, kw, inp.w);
    let mut acc = [0i32; 4];
    for ky in ky0..ky1 {
        let row = (y0 + ky as isize) as usize * inp.w as usize;
        for kx in kx0..kx1 {
            let at = (row + (x0 + kx as isize) as usize) * c + ch0;
            let w = laid[ky * kw + kx].1.to_le_bytes();
            for ((a, &x), w) in acc.iter_mut().zip(&x[at..at + 4]).zip(w) {
                *a = a.wrapping_add((x as i32 - z) * w as i8 as i32);
            }
        }
    }
    acc
}

/// `Σ_t x[at + off_t + k] · w_t[k]` for the four channels `k`, over `(off_t, w_t)` pairs.
#[cfg(any(test, not(ember_dsp)))]
#[inline(always)]
fn mac4_portable(x: &[i8], at: usize, laid: &[(i32, u32)]) -> [i32; 4] {
    let mut acc = [0i32; 4];
    for &(off, w) in laid {
        let i = at + off as usize;
        for ((a, &x), w) in acc.iter_mut().zip(&x[i..i + 4]).zip(w.to_le_bytes()) {
            *a = a.wrapping_add(x as i32 * w as i8 as i32);
        }
    }
    acc
}

#[cfg(not(ember_dsp))]
use mac4_portable as mac4;

/// [`mac4_portable`] on the M4F: per tap one LDRD, one LDR, four SXTB16 and four SMLAxy.
#[cfg(ember_dsp)]
#[inline(always)]
fn mac4(x: &[i8], at: usize, laid: &[(i32, u32)]) -> [i32; 4] {
    let span = laid.last().map_or(0, |&(off, _)| off as usize + 4);
    let taps = laid.len();
    if taps == 0 {
        return [0; 4];
    }
    let base = x[at..at + span].as_ptr();
    let [mut a0, mut a1, mut a2, mut a3] = [0i32; 4];
    // SAFETY: the offsets grow with the tap, so every word read lies in `x[at..at + span]`,
    // sliced above; `laid` holds `taps` pairs. LDR may be unaligned on ARMv7E-M. The loop
    // writes only the named registers and the flags.
    unsafe {
        core::arch::asm!(
            "2:",
            "ldrd {o}, {ww}, [{list}], #8",
            "ldr {xw}, [{base}, {o}]",
            "sxtb16 {o}, {xw}",
            "sxtb16 {u}, {ww}",
            "smlabb {a0}, {o}, {u}, {a0}",
            "smlatt {a2}, {o}, {u}, {a2}",
            "sxtb16 {o}, {xw}, ror #8",
            "sxtb16 {u}, {ww}, ror #8",
            "smlabb {a1}, {o}, {u}, {a1}",
            "smlatt {a3}, {o}, {u}, {a3}",
            "subs {n}, {n}, #1",
            "bne 2b",
            list = inout(reg) laid.as_ptr() => _,
            base = in(reg) base,
            n = inout(reg) taps => _,
            o = out(reg) _,
            ww = out(reg) _,
            xw = out(reg) _,
            u = out(reg) _,
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            a2 = inout(reg) a2,
            a3 = inout(reg) a3,
            options(nostack, readonly),
        );
    }
    [a0, a1, a2, a3]
}

/// Any channel multiplier and filter size.
fn any_multiplier(l: &Conv, weights: &[i8], x: &[i8], out: &mut [i8]) {
    any_multiplier_channels(l, weights, x, out, 0)
}

/// [`any_multiplier`] for output channels `from..`. Per output pixel, the accumulators of a
/// run of channels stay on the stack while the window's taps pass over them,
/// channel-innermost.
fn any_multiplier_channels(l: &Conv, weights: &[i8], x: &[i8], out: &mut [i8], from: usize) {
    /// Output channels accumulated together.
    const RUN: usize = 64;
    let (inp, o) = (l.input, l.output);
    let (kh, kw) = (l.kernel.0 as usize, l.kernel.1 as usize);
    let (ic, oc) = (inp.c as usize, o.c as usize);
    let multiplier = oc / ic.max(1);
    let taps = kh * kw;
    let zp = l.input_zero_point as i32;
    let mut pixels = out.chunks_exact_mut(oc);
    for oy in 0..o.h as usize {
        let y0 = (oy * l.stride.0 as usize) as isize - l.padding.0 as isize;
        for ox in 0..o.w as usize {
            let x0 = (ox * l.stride.1 as usize) as isize - l.padding.1 as isize;
            let Some(pixel) = pixels.next() else { return };
            for first in (from..oc).step_by(RUN) {
                let n = RUN.min(oc - first);
                let mut acc = [0i32; RUN];
                for ky in 0..kh {
                    let iy = y0 + ky as isize;
                    if iy < 0 || iy >= inp.h as isize {
                        continue;
                    }
                    for kx in 0..kw {
                        let ix = x0 + kx as isize;
                        if ix < 0 || ix >= inp.w as isize {
                            continue;
                        }
                        let row = (iy as usize * inp.w as usize + ix as usize) * ic;
                        let tap = ky * kw + kx;
                        for (j, a) in acc[..n].iter_mut().enumerate() {
                            let ch = first + j;
                            let xv = x[row + ch / multiplier] as i32 - zp;
                            *a = a.wrapping_add(xv * weights[ch * taps + tap] as i32);
                        }
                    }
                }
                for (j, a) in acc[..n].iter().enumerate() {
                    pixel[first + j] = l.channel(first + j).apply(*a);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The four-channel loop sums each channel's own taps at the laid-out offsets.
    #[test]
    fn four_channels_sum_their_own_taps() {
        let x: [i8; 12] = [1, -2, 3, -128, 5, 6, 7, 127, -1, 2, -3, 4];
        let w = [[2i8, 3, 4, 5], [-6, 7, -128, 127]];
        let laid = [
            (0, u32::from_le_bytes(w[0].map(|b| b as u8))),
            (6, u32::from_le_bytes(w[1].map(|b| b as u8))),
        ];
        let got = mac4_portable(&x, 2, &laid);
        let want: [i32; 4] = core::array::from_fn(|k| {
            x[2 + k] as i32 * w[0][k] as i32 + x[8 + k] as i32 * w[1][k] as i32
        });
        assert_eq!(got, want);
    }
}
