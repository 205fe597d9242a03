//! im2col: the receptive fields of a block of output pixels, gathered into the layout the
//! convolution's inner loop reads.

use super::BLOCK;
use crate::model::Conv;
use crate::simd::{pack16, sadd16, sxtb16, sxtb16_ror8, word};

/// What gathering needs of a convolution, worked out once per layer.
pub(super) struct Im2col {
    kh: usize,
    kw: usize,
    ic: usize,
    in_h: isize,
    in_w: isize,
    out_w: usize,
    stride: (usize, usize),
    padding: (isize, isize),
    zero_point: i8,
    /// `-zero_point` in both halfwords.
    offset: u32,
    /// Groups of four taps, the last zero-padded.
    pub(super) groups: usize,
}

impl Im2col {
    /// The geometry of `layer`.
    pub(super) fn new(layer: &Conv) -> Self {
        let (kh, kw, ic) = (
            layer.kernel.0 as usize,
            layer.kernel.1 as usize,
            layer.input.c as usize,
        );
        let zp = layer.input_zero_point;
        Self {
            kh,
            kw,
            ic,
            in_h: layer.input.h as isize,
            in_w: layer.input.w as isize,
            out_w: layer.output.w as usize,
            stride: (layer.stride.0 as usize, layer.stride.1 as usize),
            padding: (layer.padding.0 as isize, layer.padding.1 as isize),
            zero_point: zp,
            offset: pack16(-(zp as i32), -(zp as i32)),
            groups: (kh * kw * ic).div_ceil(4),
        }
    }

    /// Gathers output pixel `pixel`'s receptive field as `x - zero_point` (padding becomes 0)
    /// into slot `slot` of `block`. The block holds, per group of four taps `t0 t1 t2 t3`, the
    /// words `(t0, t2)` and `(t1, t3)` of each of its `BLOCK` pixels in turn: the order SXTB16
    /// splits a weight word into. `scratch` holds `4 · groups` int8 taps; its tail past the
    /// taps must hold the zero point.
    pub(super) fn gather(
        &self,
        input: &[i8],
        pixel: usize,
        scratch: &mut [i8],
        block: &mut [u32],
        slot: usize,
    ) {
        let (oy, ox) = (pixel / self.out_w, pixel % self.out_w);
        let y0 = (oy * self.stride.0) as isize - self.padding.0;
        let x0 = (ox * self.stride.1) as isize - self.padding.1;
        let seg = self.kw * self.ic;
        let inside = y0 >= 0
            && x0 >= 0
            && y0 + self.kh as isize <= self.in_h
            && x0 + self.kw as isize <= self.in_w;
        let row_at = |ky: usize| ((y0 as usize + ky) * self.in_w as usize + x0 as usize) * self.ic;
        if inside && seg % 4 == 0 {
            // Rows are whole groups: convert straight from the input.
            let rows =
                (0..self.kh).flat_map(|ky| input[row_at(ky)..row_at(ky) + seg].chunks_exact(4));
            for (group, four) in block.chunks_exact_mut(2 * BLOCK).zip(rows) {
                self.store(group, slot, word(four));
            }
            return;
        }
        if inside {
            for (ky, row) in scratch.chunks_exact_mut(seg).take(self.kh).enumerate() {
                copy_short(row, &input[row_at(ky)..row_at(ky) + seg]);
            }
        } else {
            self.gather_padded(input, y0, x0, scratch);
        }
        for (group, four) in block
            .chunks_exact_mut(2 * BLOCK)
            .zip(scratch.chunks_exact(4))
        {
            self.store(group, slot, word(four));
        }
    }

    /// Writes four taps, offset and split as SXTB16 splits weights, into `slot` of `group`.
    #[inline(always)]
    fn store(&self, group: &mut [u32], slot: usize, x: u32) {
        let pair = &mut group[2 * slot..2 * slot + 2];
        pair[0] = sadd16(sxtb16(x), self.offset);
        pair[1] = sadd16(sxtb16_ror8(x), self.offset);
    }

    /// The taps of a window that overlaps the padding, the padding as the zero point.
    fn gather_padded(&self, input: &[i8], y0: isize, x0: isize, scratch: &mut [i8]) {
        let (kw, ic) = (self.kw, self.ic);
        let kx_start = (-x0).clamp(0, kw as isize) as usize;
        let kx_end = (self.in_w - x0).clamp(kx_start as isize, kw as isize) as usize;
        for (ky, row) in scratch.chunks_exact_mut(kw * ic).take(self.kh).enumerate() {
            let iy = y0 + ky as isize;
            if iy < 0 || iy >= self.in_h || kx_start == kx_end {
                row.fill(self.zero_point);
                continue;
            }
            let at = (iy as usize * self.in_w as usize + (x0 + kx_start as isize) as usize) * ic;
            let (left, rest) = row.split_at_mut(kx_start * ic);
            let (inside, right) = rest.split_at_mut((kx_end - kx_start) * ic);
            left.fill(self.zero_point);
            copy_short(inside, &input[at..at + inside.len()]);
            right.fill(self.zero_point);
        }
    }
}

/// `dst.copy_from_slice(src)` without a `memcpy` call for the few bytes of a kernel row.
#[inline(always)]
fn copy_short(dst: &mut [i8], src: &[i8]) {
    if dst.len() > 16 {
        dst.copy_from_slice(src);
    } else {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s;
        }
    }
}
