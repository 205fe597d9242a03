//! Depthwise convolution: each output channel reads one input channel (`groups` = input
//! channels, any channel multiplier). Per output pixel, the accumulators of a run of channels
//! stay on the stack while the window's taps pass over them, channel-innermost, so each input
//! pixel is read as one contiguous row.

use crate::model::Conv;

/// Output channels accumulated together.
const RUN: usize = 64;

/// Depthwise convolution without dilation; equals [`super::reference::conv`] bit for bit.
pub fn depthwise(l: &Conv, x: &[i8], out: &mut [i8]) {
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
            for first in (0..oc).step_by(RUN) {
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
                            *a = a.wrapping_add(xv * l.weights[ch * taps + tap] as i32);
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
