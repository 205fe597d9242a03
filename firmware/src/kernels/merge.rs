//! Where branches meet: the residual Add and the channel Concat, each input at its own scale.

use crate::model::{Add, Concat, Rescale};
use crate::requant::ChannelRequant;

/// TFLite's ADD ([`super::reference::add`], bit for bit).
///
/// An input's rescaled value depends on its int8 code alone, so for a tensor of more values
/// than codes each input's 256 rescaled values are worked out once, and each element costs two
/// table loads and the output's requantization.
pub fn add(a: &Add, x: &[i8], y: &[i8], out: &mut [i8]) {
    let o = a.output;
    if out.len() < 2 * 256 {
        return super::reference::add(a, x, y, out);
    }
    let table = |r: Rescale| -> [i32; 256] {
        core::array::from_fn(|code| r.apply(code as u8 as i8, Add::LEFT_SHIFT))
    };
    let (tx, ty) = (table(a.inputs[0]), table(a.inputs[1]));
    let requant = ChannelRequant::new(0, o.multiplier, o.shift, o.zero_point, a.act_min, a.act_max);
    for ((slot, &p), &q) in out.iter_mut().zip(x).zip(y) {
        *slot = requant.apply(tx[p as u8 as usize] + ty[q as u8 as usize]);
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
                    *slot = (r.apply(q, 0) + zp).clamp(-128, 127) as i8;
                }
            }
        }
        first += n;
    }
}
