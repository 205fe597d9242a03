//! Max and average pooling, channel-innermost.

use crate::model::{Pool, PoolKind};
use crate::simd::{max8x4, word};

/// Max or average pooling; padded positions are left out of both (ONNX's default).
pub fn pool(layer: &Pool, input: &[i8], output: &mut [i8]) {
    let (inp, out) = (layer.input, layer.output);
    let c = inp.c as usize;
    let clamps = layer.act_min > i8::MIN || layer.act_max < i8::MAX;
    let span = |o: usize, stride: u8, pad: u8, kernel: u8, len: u16| {
        let start = (o * stride as usize) as isize - pad as isize;
        let end = (start + kernel as isize).min(len as isize);
        start.max(0) as usize..end.max(0) as usize
    };
    let mut pixels = output.chunks_exact_mut(c);
    for oy in 0..out.h as usize {
        let ys = span(oy, layer.stride.0, layer.padding.0, layer.kernel.0, inp.h);
        for ox in 0..out.w as usize {
            let Some(out_px) = pixels.next() else { return };
            let window = Window {
                input,
                width: inp.w as usize,
                channels: c,
                ys: ys.clone(),
                xs: span(ox, layer.stride.1, layer.padding.1, layer.kernel.1, inp.w),
            };
            match layer.kind {
                PoolKind::Max => window.max(out_px),
                PoolKind::Average => average_pixel(window.pixels(), out_px),
            }
            if clamps {
                for v in out_px.iter_mut() {
                    *v = (*v).clamp(layer.act_min, layer.act_max);
                }
            }
        }
    }
}

/// The input pixels one output pixel pools over.
struct Window<'a> {
    input: &'a [i8],
    width: usize,
    channels: usize,
    ys: core::ops::Range<usize>,
    xs: core::ops::Range<usize>,
}

impl<'a> Window<'a> {
    /// The window's pixels, `channels` values each, row by row.
    fn pixels(&self) -> impl Iterator<Item = &'a [i8]> + Clone + '_ {
        let (input, c, width, xs) = (self.input, self.channels, self.width, self.xs.clone());
        self.ys.clone().flat_map(move |y| {
            input[(y * width + xs.start) * c..(y * width + xs.end) * c].chunks_exact(c)
        })
    }

    /// Channel-wise maximum (`i8::MIN` for an empty window), four channels per word.
    fn max(&self, out: &mut [i8]) {
        let mut first = true;
        for px in self.pixels() {
            for (o, v) in out.chunks_exact_mut(4).zip(px.chunks_exact(4)) {
                // The first pixel is maxed with i8::MIN rather than copied: a copy loop here
                // becomes a memcpy call.
                let so_far = if first { 0x8080_8080 } else { word(o) };
                o.copy_from_slice(&max8x4(so_far, word(v)).to_le_bytes().map(|b| b as i8));
            }
            first = false;
        }
        let whole = self.channels / 4 * 4;
        if first {
            out[..whole].fill(i8::MIN);
        }
        for (ch, o) in out.iter_mut().enumerate().skip(whole) {
            *o = self.pixels().map(|px| px[ch]).max().unwrap_or(i8::MIN);
        }
    }
}

/// Channel-wise mean of the window's pixels, rounded half away from zero as TFLite does (0 for
/// an empty window).
fn average_pixel<'a>(pixels: impl Iterator<Item = &'a [i8]> + Clone, out: &mut [i8]) {
    let count = pixels.clone().count() as i32;
    for (ch, o) in out.iter_mut().enumerate() {
        let sum: i32 = pixels.clone().map(|px| px[ch] as i32).sum();
        let v = match count {
            0 => 0,
            _ if sum >= 0 => (sum + count / 2) / count,
            _ => (sum - count / 2) / count,
        };
        *o = v.clamp(i8::MIN as i32, i8::MAX as i32) as i8;
    }
}
