//! im2col: the receptive fields of a block of output pixels, gathered into the layout the
//! convolution's inner loop reads.

use super::BLOCK;
use crate::model::Conv;
use crate::simd::pack16;

/// One pixel's slot in an im2col block, filled a group (two words) at a time.
struct Column<'a> {
    block: &'a mut [u32],
    /// Index of the next group's first word for this slot.
    at: usize,
    /// `-zero_point` in both halfwords.
    offset: u32,
}

impl Column<'_> {
    /// Input bytes, a whole number of words, offset and split as SXTB16 splits weights.
    #[inline(always)]
    fn put_all(&mut self, bytes: &[i8]) {
        let words = bytes.len() / 4;
        let end = self.at + 2 * BLOCK * words;
        if words == 0 || end - 2 * BLOCK + 2 > self.block.len() {
            return;
        }
        let dst = &mut self.block[self.at..end - 2 * BLOCK + 2];
        convert_rows(bytes, 1, words * 4, words * 4, dst, self.offset);
        self.at = end;
    }

    /// Four taps of padding.
    #[inline(always)]
    fn zero(&mut self) {
        self.write(0, 0);
    }

    #[inline(always)]
    fn write(&mut self, even: u32, odd: u32) {
        if let Some(pair) = self.block.get_mut(self.at..self.at + 2) {
            pair[0] = even;
            pair[1] = odd;
        }
        self.at += 2 * BLOCK;
    }
}

/// Converts `rows` rows of `row_bytes` input bytes (a multiple of four), `stride` bytes apart
/// in `src`, to the offset halfword pairs `(b0, b2)`, `(b1, b3)` of each word, stored at
/// `dst[8k]`, `dst[8k + 1]`: one slot of consecutive groups of a block. The definition the
/// assembly and SSE2 twins are tested against.
#[cfg(any(test, not(any(ember_dsp, ember_sse2, ember_thumb2))))]
#[inline(always)]
fn convert_rows_portable(
    src: &[i8],
    rows: usize,
    row_bytes: usize,
    stride: usize,
    dst: &mut [u32],
    offset: u32,
) {
    use crate::simd::{sadd16, sxtb16, sxtb16_ror8, word};
    let words = (0..rows).flat_map(|r| src[r * stride..r * stride + row_bytes].chunks_exact(4));
    for (four, pair) in words.zip(dst.chunks_mut(2 * BLOCK)) {
        let x = word(four);
        pair[0] = sadd16(sxtb16(x), offset);
        pair[1] = sadd16(sxtb16_ror8(x), offset);
    }
}

#[cfg(not(any(ember_dsp, ember_sse2, ember_thumb2)))]
use convert_rows_portable as convert_rows;

/// Whether [`convert_rows`] may read and write its `rows` whole within `src` and `dst`: the
/// fast twins check once, then run without bounds checks.
#[cfg(any(ember_dsp, ember_sse2, ember_thumb2))]
#[inline(always)]
fn rows_fit(src: &[i8], rows: usize, row_bytes: usize, stride: usize, dst: &[u32]) -> bool {
    let words = row_bytes / 4;
    rows > 0
        && words > 0
        && stride >= row_bytes
        && src.len() >= (rows - 1) * stride + words * 4
        && dst.len() >= 2 * BLOCK * (rows * words - 1) + 2
}

/// [`convert_rows_portable`] for the host simulation on x86-64, in SSE2: a word's bytes
/// sign-extended to halfwords, reordered `b0 b2 b1 b3`, offset, and stored as the two words
/// in one 64-bit store. Bounds are checked once, as for the assembly.
#[cfg(ember_sse2)]
#[inline(always)]
fn convert_rows(
    src: &[i8],
    rows: usize,
    row_bytes: usize,
    stride: usize,
    dst: &mut [u32],
    offset: u32,
) {
    use core::arch::x86_64::*;
    let words = row_bytes / 4;
    if !rows_fit(src, rows, row_bytes, stride, dst) {
        return;
    }
    // SAFETY: SSE2 is in the x86-64 baseline. Reads `rows` runs of `words` words of `src`,
    // `stride` bytes apart, and writes two words every `2 · BLOCK` of `dst`: both within the
    // slices, as checked above.
    unsafe {
        let offset = _mm_set1_epi32(offset as i32);
        let mut out = dst.as_mut_ptr() as *mut __m128i;
        for r in 0..rows {
            let row = src.as_ptr().add(r * stride) as *const i32;
            for k in 0..words {
                let x = _mm_cvtsi32_si128(row.add(k).read_unaligned());
                let x = _mm_srai_epi16::<8>(_mm_unpacklo_epi8(x, x));
                let x = _mm_add_epi16(_mm_shufflelo_epi16::<0b11_01_10_00>(x), offset);
                _mm_storel_epi64(out, x);
                out = (out as *mut u32).add(2 * BLOCK) as *mut __m128i;
            }
        }
    }
}

// The assembly below and the SSE2 loop are written for four pixels per block.
const _: () = assert!(BLOCK == 4);

/// Converts `rows` rows of `row_bytes` input bytes (a multiple of four), `stride` bytes apart
/// in `src`, to the offset halfword pairs `(b0, b2)`, `(b1, b3)` of each word, stored at
/// `dst[8k]`, `dst[8k + 1]`: one slot of consecutive groups of a block. Eight instructions a
/// word.
#[cfg(ember_dsp)]
#[inline(always)]
fn convert_rows(
    src: &[i8],
    rows: usize,
    row_bytes: usize,
    stride: usize,
    dst: &mut [u32],
    offset: u32,
) {
    let words = row_bytes / 4;
    if !rows_fit(src, rows, row_bytes, stride, dst) {
        return;
    }
    // SAFETY: reads `rows` runs of `words` words from `src`, `stride` bytes apart (LDR takes
    // an unaligned address on ARMv7E-M), and writes two words every `2 · BLOCK` of `dst`;
    // both stay within the slices, as checked above.
    unsafe {
        core::arch::asm!(
            "2:",
            "mov {n}, {words}",
            "3:",
            "ldr {x}, [{src}], #4",
            "sxtb16 {even}, {x}",
            "sxtb16 {x}, {x}, ror #8",
            "sadd16 {even}, {even}, {offset}",
            "sadd16 {x}, {x}, {offset}",
            "strd {even}, {x}, [{dst}], #32",
            "subs {n}, {n}, #1",
            "bne 3b",
            "add {src}, {src}, {skip}",
            "subs {rows}, {rows}, #1",
            "bne 2b",
            src = inout(reg) src.as_ptr() => _,
            dst = inout(reg) dst.as_mut_ptr() => _,
            rows = inout(reg) rows => _,
            words = in(reg) words,
            skip = in(reg) stride - words * 4,
            offset = in(reg) offset,
            n = out(reg) _,
            x = out(reg) _,
            even = out(reg) _,
            options(nostack),
        );
    }
}

/// [`convert_rows_portable`] on ARMv7-M without the DSP extension (the Cortex-M3): each byte
/// sign-extended (SXTB/SBFX/ASR), offset, and two packed into a word (BFI). Fourteen
/// instructions a word.
#[cfg(all(ember_thumb2, not(ember_dsp)))]
#[inline(always)]
fn convert_rows(
    src: &[i8],
    rows: usize,
    row_bytes: usize,
    stride: usize,
    dst: &mut [u32],
    offset: u32,
) {
    let words = row_bytes / 4;
    if !rows_fit(src, rows, row_bytes, stride, dst) {
        return;
    }
    // `offset` is `-zero_point` in both halfwords; one halfword of it, sign-extended.
    let offset = offset as u16 as i16 as i32;
    // SAFETY: as for the DSP twin: reads `rows` runs of `words` words from `src`, `stride`
    // bytes apart (LDR takes an unaligned address on ARMv7-M), and writes two words every
    // `2 · BLOCK` of `dst`; both stay within the slices, as checked above.
    unsafe {
        core::arch::asm!(
            "2:",
            "mov {n}, {words}",
            "3:",
            "ldr {x}, [{src}], #4",
            "sxtb {even}, {x}",
            "sbfx {t}, {x}, #16, #8",
            "add {even}, {even}, {offset}",
            "add {t}, {t}, {offset}",
            "bfi {even}, {t}, #16, #16",
            "sbfx {odd}, {x}, #8, #8",
            "asr {t}, {x}, #24",
            "add {odd}, {odd}, {offset}",
            "add {t}, {t}, {offset}",
            "bfi {odd}, {t}, #16, #16",
            "strd {even}, {odd}, [{dst}], #32",
            "subs {n}, {n}, #1",
            "bne 3b",
            "add {src}, {src}, {skip}",
            "subs {rows}, {rows}, #1",
            "bne 2b",
            src = inout(reg) src.as_ptr() => _,
            dst = inout(reg) dst.as_mut_ptr() => _,
            rows = inout(reg) rows => _,
            words = in(reg) words,
            skip = in(reg) stride - words * 4,
            offset = in(reg) offset,
            n = out(reg) _,
            x = out(reg) _,
            even = out(reg) _,
            odd = out(reg) _,
            t = out(reg) _,
            options(nostack),
        );
    }
}

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
    /// Taps per kernel row in the column: `kw · ic`, or that rounded up to a multiple of four
    /// when the weights were widened to match (see `conv`).
    row: usize,
    /// Groups of four taps, the last zero-padded.
    pub(super) groups: usize,
}

impl Im2col {
    /// The geometry of `layer`, its kernel rows `row` taps long (`kw · in_c`, or more when the
    /// weights are widened with zeros).
    pub(super) fn new(layer: &Conv, row: usize) -> Self {
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
            row,
            groups: (kh * row).div_ceil(4),
        }
    }

    /// Gathers output pixel `pixel`'s receptive field as `x - zero_point` (padding becomes 0)
    /// into slot `slot` of `block`. The block holds, per group of four taps `t0 t1 t2 t3`, the
    /// words `(t0, t2)` and `(t1, t3)` of each of its `BLOCK` pixels in turn: the order SXTB16
    /// splits a weight word into. `scratch` holds `4 · groups` offset taps; its tail past the
    /// taps must be zero.
    pub(super) fn gather(
        &self,
        input: &[i8],
        pixel: usize,
        scratch: &mut [i16],
        block: &mut [u32],
        slot: usize,
    ) {
        let (oy, ox) = (pixel / self.out_w, pixel % self.out_w);
        let y0 = (oy * self.stride.0) as isize - self.padding.0;
        let x0 = (ox * self.stride.1) as isize - self.padding.1;
        // A widened row reads past the kernel's last tap (weights there are 0) but must stay
        // inside the input row.
        let inside_x =
            x0 >= 0 && x0 * self.ic as isize + self.row as isize <= self.in_w * self.ic as isize;
        let inside_y = y0 >= 0 && y0 + self.kh as isize <= self.in_h;
        if self.row.is_multiple_of(4) && inside_x && inside_y {
            // The common case: whole rows straight from the input, in one pass.
            let stride = self.in_w as usize * self.ic;
            let start = y0 as usize * stride + x0 as usize * self.ic;
            let (src, dst) = (&input[start..], &mut block[2 * slot..]);
            convert_rows(src, self.kh, self.row, stride, dst, self.offset);
            return;
        }
        if self.row.is_multiple_of(4) && (inside_x || self.ic.is_multiple_of(4)) {
            self.gather_words(input, y0, x0, inside_x, block, slot);
            return;
        }
        self.gather_taps(input, y0, x0, scratch);
        for (group, t) in block
            .chunks_exact_mut(2 * BLOCK)
            .zip(scratch.chunks_exact(4))
        {
            let pair = &mut group[2 * slot..2 * slot + 2];
            pair[0] = pack16(t[0] as i32, t[2] as i32);
            pair[1] = pack16(t[1] as i32, t[3] as i32);
        }
    }

    /// The window at `(y0, x0)` a word (four taps) at a time: whole rows when the window is
    /// inside horizontally, else pixel by pixel (`ic` a multiple of four), padding as zeros.
    fn gather_words(
        &self,
        input: &[i8],
        y0: isize,
        x0: isize,
        inside_x: bool,
        block: &mut [u32],
        slot: usize,
    ) {
        let mut column = Column {
            block,
            at: 2 * slot,
            offset: self.offset,
        };
        let ic = self.ic as isize;
        for ky in 0..self.kh as isize {
            let iy = y0 + ky;
            let row_at = (iy * self.in_w + x0) * ic;
            if iy < 0 || iy >= self.in_h {
                (0..self.row / 4).for_each(|_| column.zero());
            } else if inside_x {
                let row = &input[row_at as usize..row_at as usize + self.row];
                column.put_all(row);
            } else {
                for kx in 0..self.kw as isize {
                    let (ix, at) = (x0 + kx, (row_at + kx * ic) as usize);
                    if ix >= 0 && ix < self.in_w {
                        let px = &input[at..at + self.ic];
                        column.put_all(px);
                    } else {
                        (0..self.ic / 4).for_each(|_| column.zero());
                    }
                }
            }
        }
    }

    /// The taps of the window at `(y0, x0)` into `scratch`, offset by the zero point, with 0
    /// where the window hangs over the padding. One select per tap, rather than copies and
    /// fills, which would compile to `memcpy`/`memset` calls costlier than these few bytes.
    fn gather_taps(&self, input: &[i8], y0: isize, x0: isize, scratch: &mut [i16]) {
        let (kw, ic, zp) = (self.kw, self.ic, self.zero_point as i16);
        let kx_start = (-x0).clamp(0, kw as isize) as usize;
        let kx_end = (self.in_w - x0).clamp(kx_start as isize, kw as isize) as usize;
        for (ky, row) in scratch.chunks_exact_mut(self.row).take(self.kh).enumerate() {
            let iy = y0 + ky as isize;
            let (lo, hi) = if iy < 0 || iy >= self.in_h {
                (0, 0)
            } else {
                (kx_start * ic, kx_end * ic)
            };
            // The row's first tap sits at `base` in the input; taps before `lo` are padding.
            let base = (iy * self.in_w + x0) * ic as isize;
            for (k, t) in row.iter_mut().enumerate() {
                *t = if k >= lo && k < hi {
                    input[(base + k as isize) as usize] as i16 - zp
                } else {
                    0
                };
            }
        }
    }
}

#[cfg(all(test, ember_sse2))]
mod sse2_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The SSE2 conversion writes the same words, and only those, as the definition.
        #[test]
        fn convert_rows_sse2_equals_the_portable_loop(
            rows in 1usize..4,
            words in 1usize..8,
            gap in 0usize..9,
            src in proptest::collection::vec(any::<i8>(), 4 * 8 * 4 + 9 * 4),
            zero_point in any::<i8>(),
        ) {
            let (row_bytes, stride) = (4 * words, 4 * words + gap);
            let offset = pack16(-(zero_point as i32), -(zero_point as i32));
            let len = 2 * BLOCK * rows * words;
            let (mut fast, mut want) = (vec![0x5a5a_5a5a; len], vec![0x5a5a_5a5a; len]);
            convert_rows(&src, rows, row_bytes, stride, &mut fast, offset);
            convert_rows_portable(&src, rows, row_bytes, stride, &mut want, offset);
            prop_assert_eq!(fast, want);
        }
    }
}
