//! Where branches meet: the residual Add and the channel Concat, each input at its own scale.

use crate::model::{Add, Concat, Rescale};
use crate::requant::multiply_by_quantized_multiplier;

/// `(q - zero_point) · 2^left · multiplier · 2^shift`.
#[inline(always)]
fn rescaled(q: i8, r: Rescale, left: u32) -> i32 {
    let centred = (q as i32 - r.zero_point as i32) << left;
    multiply_by_quantized_multiplier(centred, r.multiplier, r.shift as i32)
}

/// TFLite's ADD: both inputs rescaled to a common scale with [`Add::LEFT_SHIFT`] bits of
/// headroom, summed, requantized to the output and clamped.
pub fn add(a: &Add, x: &[i8], y: &[i8], out: &mut [i8]) {
    let [rx, ry] = a.inputs;
    let o = a.output;
    let (lo, hi) = (a.act_min as i32, a.act_max as i32);
    for ((slot, &p), &q) in out.iter_mut().zip(x).zip(y) {
        let sum = rescaled(p, rx, Add::LEFT_SHIFT) + rescaled(q, ry, Add::LEFT_SHIFT);
        let v = multiply_by_quantized_multiplier(sum, o.multiplier, o.shift as i32);
        *slot = (v + o.zero_point as i32).clamp(lo, hi) as i8;
    }
}

/// Concatenation on channels: each input's codes mapped to the output's quantization
/// (copied when the two agree).
pub fn concat(c: &Concat, parts: &[&[i8]], out: &mut [i8]) {
    let total = c.output.c as usize;
    let zp = c.output_zero_point as i32;
    let mut first = 0;
    for (part, x) in c.parts.iter().zip(parts) {
        let n = part.channels as usize;
        let r = part.rescale;
        let same = r.zero_point == c.output_zero_point && r.multiplier == 1 << 30 && r.shift == 1;
        for (o, i) in out.chunks_exact_mut(total).zip(x.chunks_exact(n)) {
            let o = &mut o[first..first + n];
            if same {
                o.copy_from_slice(i);
            } else {
                for (slot, &q) in o.iter_mut().zip(i) {
                    *slot = (rescaled(q, r, 0) + zp).clamp(-128, 127) as i8;
                }
            }
        }
        first += n;
    }
}
