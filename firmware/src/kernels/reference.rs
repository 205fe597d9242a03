//! The definitions: plain loops, one output at a time, as TensorFlow Lite's reference kernels
//! compute them. The fast kernels must equal these bit for bit; a layer no fast kernel takes
//! runs through these.

use crate::model::{Add, Conv};
use crate::requant::requantize;

/// Convolution with any groups, stride, padding and dilation; padded taps read the input's
/// zero point (they add nothing).
pub fn conv(l: &Conv, x: &[i8], out: &mut [i8]) {
    let (inp, o) = (l.input, l.output);
    let (kh, kw) = (l.kernel.0 as isize, l.kernel.1 as isize);
    let (ic, oc) = (inp.c as usize, o.c as usize);
    let per_group_in = l.group_channels();
    let per_group_out = oc / (l.groups as usize).max(1);
    let mut outputs = out.iter_mut();
    for oy in 0..o.h as isize {
        for ox in 0..o.w as isize {
            for ch in 0..oc {
                let first_in = ch / per_group_out * per_group_in;
                let mut acc = l.bias[ch];
                for ky in 0..kh {
                    for kx in 0..kw {
                        let iy = oy * l.stride.0 as isize - l.padding.0 as isize
                            + ky * l.dilation.0 as isize;
                        let ix = ox * l.stride.1 as isize - l.padding.1 as isize
                            + kx * l.dilation.1 as isize;
                        if iy < 0 || ix < 0 || iy >= inp.h as isize || ix >= inp.w as isize {
                            continue;
                        }
                        let pixel = (iy as usize * inp.w as usize + ix as usize) * ic + first_in;
                        let tap = (ky as usize * kw as usize + kx as usize) * per_group_in;
                        let xs = &x[pixel..pixel + per_group_in];
                        for (t, &xv) in (tap..).zip(xs) {
                            let w = l.weight(ch, t);
                            let v = (xv as i32 - l.input_zero_point as i32) * w as i32;
                            acc = acc.wrapping_add(v);
                        }
                    }
                }
                let Some(slot) = outputs.next() else { return };
                *slot = requantize(
                    acc,
                    l.multiplier[ch],
                    l.shift[ch],
                    l.output_zero_point,
                    l.act_min,
                    l.act_max,
                );
            }
        }
    }
}

/// TFLite's ADD, one element at a time: each input centred, shifted left by
/// [`Add::LEFT_SHIFT`] and rescaled, the two summed, then requantized and clamped.
pub fn add(a: &Add, x: &[i8], y: &[i8], out: &mut [i8]) {
    for ((slot, &p), &q) in out.iter_mut().zip(x).zip(y) {
        let [rx, ry] = a.inputs;
        let sum = rx.apply(p, Add::LEFT_SHIFT) + ry.apply(q, Add::LEFT_SHIFT);
        let o = a.output;
        *slot = requantize(
            sum,
            o.multiplier,
            o.shift,
            o.zero_point,
            a.act_min,
            a.act_max,
        );
    }
}
