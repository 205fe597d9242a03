//! im2col: the receptive fields of a block of output pixels, gathered into the layout the
//! convolution's inner loop reads.

use core::mem::MaybeUninit;

use super::BLOCK;
use crate::model::Conv;
use crate::simd::pack16;

/// Most bytes of a convolution's input that [`Im2col::windows`] copies with its padding (on
/// the stack): the MNIST CNN's widest, 16 × 16 × 8 with its border, fits; half that where RAM
/// is small, and larger inputs gather window by window.
const PADDED_BYTES: usize = if super::SMALL_RAM { 1024 } else { 2048 };

/// Room for the padded copy of an input, or else for the taps of one window.
pub(super) type Buffer = [MaybeUninit<i16>; PADDED_BYTES / 2];

/// How a convolution gathers its windows.
pub(super) enum Windows<'a> {
    /// Whole rows of a [`Source`], a block at a time.
    Rows(Source<'a>),
    /// Tap by tap through this scratch (`4 · groups` taps), pixel by pixel.
    Taps(&'a mut [i16]),
}

/// Input rows in which every window of a convolution lies whole: the input itself, or a copy
/// with the padding written out as the zero point. Gathering from it is whole rows for every
/// pixel, without border cases.
pub(super) struct Source<'a> {
    bytes: &'a [i8],
    /// Bytes from one row to the next.
    stride: usize,
}

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

/// [`convert_rows_portable`] on raw parts, as the fast twins take them.
///
/// # Safety
/// As for the fast twins: `src` readable for `(rows - 1) · stride + 4 · words` bytes, `dst`
/// writable for `2 · BLOCK · (rows · words - 1) + 2` words, `rows, words > 0`.
#[cfg(not(any(ember_dsp, ember_sse2, ember_thumb2)))]
#[inline(always)]
unsafe fn convert_rows_raw(
    src: *const i8,
    rows: usize,
    words: usize,
    stride: usize,
    dst: *mut u32,
    offset: u32,
) {
    // SAFETY: the caller's contract is exactly these slices' extent.
    let (src, dst) = unsafe {
        (
            core::slice::from_raw_parts(src, (rows - 1) * stride + 4 * words),
            core::slice::from_raw_parts_mut(dst, 2 * BLOCK * (rows * words - 1) + 2),
        )
    };
    convert_rows_portable(src, rows, 4 * words, stride, dst, offset);
}

/// [`convert_rows_portable`] by a fast twin, checked once: it converts nothing when the rows
/// do not fit `src` and `dst`.
#[cfg(any(ember_dsp, ember_sse2, ember_thumb2))]
#[inline(always)]
fn convert_rows(
    src: &[i8],
    rows: usize,
    row_bytes: usize,
    stride: usize,
    dst: &mut [u32],
    offset: u32,
) {
    if rows_fit(src, rows, row_bytes, stride, dst) {
        // SAFETY: `rows_fit` checked exactly the twins' contract.
        let (src, dst, words) = (src.as_ptr(), dst.as_mut_ptr(), row_bytes / 4);
        unsafe { convert_rows_raw(src, rows, words, stride, dst, offset) };
    }
}

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

/// [`convert_rows_portable`] for the host simulation on x86-64, in SSE2, unchecked as the
/// assembly: a word's bytes sign-extended to halfwords, reordered `b0 b2 b1 b3`, offset, and
/// stored as the two words in one 64-bit store.
///
/// # Safety
/// As for the assembly twins.
#[cfg(ember_sse2)]
#[inline(always)]
unsafe fn convert_rows_raw(
    src: *const i8,
    rows: usize,
    words: usize,
    stride: usize,
    dst: *mut u32,
    offset: u32,
) {
    use core::arch::x86_64::*;
    // SAFETY: SSE2 is in the x86-64 baseline. Reads `rows` runs of `words` words of `src`,
    // `stride` bytes apart, and writes two words every `2 · BLOCK` of `dst`: both within what
    // the caller guarantees.
    unsafe {
        let offset = _mm_set1_epi32(offset as i32);
        let mut out = dst as *mut __m128i;
        for r in 0..rows {
            let row = src.add(r * stride) as *const i32;
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

/// [`convert_rows`] without its checks: `rows > 0` rows of `words > 0` words, `stride`
/// bytes apart, from `src`. Eight instructions a word.
///
/// # Safety
/// `src` must be readable for `(rows - 1) · stride + 4 · words` bytes, `dst` writable for
/// `2 · BLOCK · (rows · words - 1) + 2` words, and `stride >= 4 · words`.
#[cfg(ember_dsp)]
#[inline(always)]
unsafe fn convert_rows_raw(
    src: *const i8,
    rows: usize,
    words: usize,
    stride: usize,
    dst: *mut u32,
    offset: u32,
) {
    // SAFETY: reads `rows` runs of `words` words from `src`, `stride` bytes apart (LDR takes
    // an unaligned address on ARMv7E-M), and writes two words every `2 · BLOCK` of `dst`;
    // both stay within what the caller guarantees.
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
            src = inout(reg) src => _,
            dst = inout(reg) dst => _,
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

/// [`convert_rows_portable`] on ARMv7-M without the DSP extension (the Cortex-M3), unchecked
/// as the DSP twin: each byte sign-extended (SXTB/SBFX/ASR), offset, and two packed into a
/// word (BFI). Fourteen instructions a word.
///
/// # Safety
/// As for the DSP twin.
#[cfg(all(ember_thumb2, not(ember_dsp)))]
#[inline(always)]
unsafe fn convert_rows_raw(
    src: *const i8,
    rows: usize,
    words: usize,
    stride: usize,
    dst: *mut u32,
    offset: u32,
) {
    // `offset` is `-zero_point` in both halfwords; one halfword of it, sign-extended.
    let offset = offset as u16 as i16 as i32;
    // SAFETY: as for the DSP twin: reads `rows` runs of `words` words from `src`, `stride`
    // bytes apart (LDR takes an unaligned address on ARMv7-M), and writes two words every
    // `2 · BLOCK` of `dst`; both stay within what the caller guarantees.
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
            src = inout(reg) src => _,
            dst = inout(reg) dst => _,
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
    out_h: usize,
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
            out_h: layer.output.h as usize,
            out_w: layer.output.w as usize,
            stride: (layer.stride.0 as usize, layer.stride.1 as usize),
            padding: (layer.padding.0 as isize, layer.padding.1 as isize),
            zero_point: zp,
            offset: pack16(-(zp as i32), -(zp as i32)),
            row,
            groups: (kh * row).div_ceil(4),
        }
    }

    /// How to gather the windows: from `input` itself when no window leaves it; else from a
    /// copy in `buf` with the padding (and the margin a widened row reads past the last tap)
    /// filled with the zero point; or, when the rows are not whole words or the copy does not
    /// fit, tap by tap with `buf` as scratch.
    pub(super) fn windows<'a>(&self, input: &'a [i8], buf: &'a mut Buffer) -> Windows<'a> {
        // Rows and bytes per row that the last window reaches, counted from the padded origin.
        let rows = (self.out_h.max(1) - 1) * self.stride.0 + self.kh;
        let len = (self.out_w.max(1) - 1) * self.stride.1 * self.ic + self.row;
        let (in_h, in_len) = (self.in_h as usize, self.in_w as usize * self.ic);
        let (top, left) = (self.padding.0 as usize, self.padding.1 as usize * self.ic);
        if !self.row.is_multiple_of(4) || rows * len > PADDED_BYTES {
            let scratch = &mut buf[..4 * self.groups];
            scratch.fill(MaybeUninit::new(0));
            // SAFETY: every element of `scratch` was just written.
            return Windows::Taps(unsafe {
                &mut *(scratch as *mut [MaybeUninit<i16>] as *mut [i16])
            });
        }
        if top == 0 && left == 0 && rows <= in_h && len <= in_len {
            let stride = in_len;
            return Windows::Rows(Source {
                bytes: input,
                stride,
            });
        }
        // SAFETY: `Buffer` is `PADDED_BYTES` bytes of `MaybeUninit`, which any bytes may fill;
        // the region taken is within it (checked above), and is written whole before it is
        // read as `i8`.
        let bytes = unsafe {
            let region = core::slice::from_raw_parts_mut(
                buf.as_mut_ptr() as *mut MaybeUninit<i8>,
                rows * len,
            );
            region.fill(MaybeUninit::new(self.zero_point));
            &mut *(region as *mut [MaybeUninit<i8>] as *mut [i8])
        };
        // Padding at least as wide as the windows' reach leaves no input byte in the copy.
        let n = in_len.min(len.saturating_sub(left));
        if n > 0 {
            for (y, src) in (top..rows).zip(input.chunks_exact(in_len.max(1)).take(in_h)) {
                bytes[y * len + left..][..n].copy_from_slice(&src[..n]);
            }
        }
        Windows::Rows(Source { bytes, stride: len })
    }

    /// Where in `source` the window of the output pixel at row `oy`, column `ox` starts.
    #[inline(always)]
    pub(super) fn window_start(&self, source: &Source, (oy, ox): (usize, usize)) -> usize {
        oy * self.stride.0 * source.stride + ox * self.stride.1 * self.ic
    }

    /// Gathers the windows starting at `starts` in `source` into the slots of `block`, as
    /// [`gather`](Self::gather) does pixel by pixel: each kernel row is whole words of one
    /// row. The bounds are checked once for the block, and every word of it is written (with
    /// zeros if a window did not fit, which `source` rules out).
    #[inline(always)]
    pub(super) fn gather_block(
        &self,
        source: &Source,
        starts: [usize; BLOCK],
        block: &mut [MaybeUninit<u32>],
    ) {
        let words = self.row / 4;
        let (stride, reach) = (source.stride, (self.kh - 1) * source.stride + self.row);
        let fits = self.kh > 0
            && words > 0
            && self.row.is_multiple_of(4)
            && stride >= self.row
            && block.len() == self.groups * 2 * BLOCK
            && self.groups == self.kh * words
            && starts.iter().all(|&s| s + reach <= source.bytes.len());
        if !fits {
            block.fill(MaybeUninit::new(0));
            return;
        }
        let (src, dst) = (source.bytes.as_ptr(), block.as_mut_ptr() as *mut u32);
        let starts = starts.map(|s| src.wrapping_add(s));
        // SAFETY: checked above: `kh` rows of `words` words from each start lie in `source`,
        // and each slot's `groups = kh · words` groups, which cover the block, lie in it.
        unsafe { convert_block_raw(&starts, self.kh, words, stride, dst, self.offset) };
    }
}

/// The windows at `starts` converted into the `BLOCK` slots of the block at `dst`, each as
/// [`convert_rows_raw`] converts one: slot by slot.
///
/// # Safety
/// As for [`convert_rows_raw`], for every start and its slot `dst + 2 · slot`.
#[cfg(not(ember_dsp))]
#[inline(always)]
unsafe fn convert_block_raw(
    starts: &[*const i8; BLOCK],
    rows: usize,
    words: usize,
    stride: usize,
    dst: *mut u32,
    offset: u32,
) {
    for (slot, &src) in starts.iter().enumerate() {
        // SAFETY: the caller's contract, slot by slot.
        unsafe { convert_rows_raw(src, rows, words, stride, dst.add(2 * slot), offset) };
    }
}

/// [`convert_block_raw`] in one piece of assembly: the four slots' loops one after the
/// other, so that nothing between them is spilled. Per slot three instructions, per row
/// four, and per word the eight of [`convert_rows_raw`].
///
/// # Safety
/// As for [`convert_rows_raw`], for every start and its slot `dst + 2 · slot`.
#[cfg(ember_dsp)]
#[inline(always)]
unsafe fn convert_block_raw(
    starts: &[*const i8; BLOCK],
    rows: usize,
    words: usize,
    stride: usize,
    dst: *mut u32,
    offset: u32,
) {
    macro_rules! slot {
        () => {
            concat!(
                "ldr {src}, [{starts}], #4\n",
                "mov {dst}, {slot}\n",
                "add {slot}, {slot}, #8\n",
                "mov {r}, {rows}\n",
                "3:\n",
                "mov {n}, {words}\n",
                "4:\n",
                "ldr {x}, [{src}], #4\n",
                "sxtb16 {even}, {x}\n",
                "sxtb16 {x}, {x}, ror #8\n",
                "sadd16 {even}, {even}, {offset}\n",
                "sadd16 {x}, {x}, {offset}\n",
                "strd {even}, {x}, [{dst}], #32\n",
                "subs {n}, {n}, #1\n",
                "bne 4b\n",
                "add {src}, {src}, {skip}\n",
                "subs {r}, {r}, #1\n",
                "bne 3b\n",
            )
        };
    }
    const _: () = assert!(BLOCK == 4);
    // SAFETY: per slot, reads `rows` runs of `words` words from its start, `stride` bytes
    // apart (LDR takes an unaligned address on ARMv7E-M), and writes two words every
    // `2 · BLOCK` from `dst + 2 · slot`: all within what the caller guarantees.
    unsafe {
        core::arch::asm!(
            slot!(),
            slot!(),
            slot!(),
            slot!(),
            starts = inout(reg) starts.as_ptr() => _,
            slot = inout(reg) dst => _,
            rows = in(reg) rows,
            words = in(reg) words,
            skip = in(reg) stride - words * 4,
            offset = in(reg) offset,
            src = out(reg) _,
            dst = out(reg) _,
            r = out(reg) _,
            n = out(reg) _,
            x = out(reg) _,
            even = out(reg) _,
            options(nostack),
        );
    }
}

impl Im2col {
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
