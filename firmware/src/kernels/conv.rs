//! Convolution: im2col blocks of four output pixels, each filter one pass over a block.

use core::mem::MaybeUninit;

use super::im2col::{Buffer, Im2col, Windows};
use super::{BLOCK, MAX_TAPS, SMALL_RAM};
use crate::model::{Conv, Pool, PoolKind};

/// Adds `Σ w · x` over whole groups of four weights to each pixel's accumulator in `acc`.
/// `block` holds `2 · BLOCK` words per group, laid out as [`Im2col::gather`] writes them.
/// The definition the SMLAD, Cortex-M3 and SSE2 loops are tested against.
#[cfg(any(test, not(any(ember_dsp, ember_sse2, ember_thumb2))))]
#[inline(always)]
fn mac_groups_portable(weights: &[i8], block: &[u32], acc: &mut [i32; BLOCK]) {
    use crate::simd::{smlad, sxtb16, sxtb16_ror8, word};
    for (w, pairs) in weights.chunks_exact(4).zip(block.chunks_exact(2 * BLOCK)) {
        let (even, odd) = (sxtb16(word(w)), sxtb16_ror8(word(w)));
        for (a, x) in acc.iter_mut().zip(pairs.chunks_exact(2)) {
            *a = smlad(odd, x[1], smlad(even, x[0], *a));
        }
    }
}

#[cfg(not(any(ember_dsp, ember_sse2, ember_thumb2)))]
use mac_groups_portable as mac_groups;

/// [`mac_groups_portable`] on ARMv7-M without the DSP extension (the Cortex-M3): no SMLAD, so
/// each tap is one LDRSH and one MLA. Per group the weight word is split two bytes at a time
/// (SXTB/SBFX/ASR), and both are applied to the four pixels' matching halfwords, read at
/// fixed offsets from the group's start: 40 instructions for 16 MACs.
#[cfg(all(ember_thumb2, not(ember_dsp)))]
#[inline(always)]
fn mac_groups(weights: &[i8], block: &[u32], acc: &mut [i32; BLOCK]) {
    let groups = weights.len() / 4;
    let block = &block[..groups * 2 * BLOCK];
    if groups == 0 {
        return;
    }
    let [mut a0, mut a1, mut a2, mut a3] = *acc;
    // SAFETY: the loop reads `groups` words from `weights` (LDR allows the unaligned address on
    // ARMv7-M) and `groups · 8` words from `block` (halfword loads at offsets 0..32 of each
    // group's 32 bytes), both within the slices checked above; it writes only the named
    // registers and the flags.
    unsafe {
        core::arch::asm!(
            "2:",
            "ldr {w}, [{wp}], #4",
            // Taps 0 and 2: the low and high halfwords of each pixel's first word.
            "sxtb {lo}, {w}",
            "sbfx {hi}, {w}, #16, #8",
            "ldrsh {t}, [{bp}, #0]",
            "mla {a0}, {t}, {lo}, {a0}",
            "ldrsh {t}, [{bp}, #2]",
            "mla {a0}, {t}, {hi}, {a0}",
            "ldrsh {t}, [{bp}, #8]",
            "mla {a1}, {t}, {lo}, {a1}",
            "ldrsh {t}, [{bp}, #10]",
            "mla {a1}, {t}, {hi}, {a1}",
            "ldrsh {t}, [{bp}, #16]",
            "mla {a2}, {t}, {lo}, {a2}",
            "ldrsh {t}, [{bp}, #18]",
            "mla {a2}, {t}, {hi}, {a2}",
            "ldrsh {t}, [{bp}, #24]",
            "mla {a3}, {t}, {lo}, {a3}",
            "ldrsh {t}, [{bp}, #26]",
            "mla {a3}, {t}, {hi}, {a3}",
            // Taps 1 and 3: the second word's halfwords.
            "sbfx {lo}, {w}, #8, #8",
            "asr {hi}, {w}, #24",
            "ldrsh {t}, [{bp}, #4]",
            "mla {a0}, {t}, {lo}, {a0}",
            "ldrsh {t}, [{bp}, #6]",
            "mla {a0}, {t}, {hi}, {a0}",
            "ldrsh {t}, [{bp}, #12]",
            "mla {a1}, {t}, {lo}, {a1}",
            "ldrsh {t}, [{bp}, #14]",
            "mla {a1}, {t}, {hi}, {a1}",
            "ldrsh {t}, [{bp}, #20]",
            "mla {a2}, {t}, {lo}, {a2}",
            "ldrsh {t}, [{bp}, #22]",
            "mla {a2}, {t}, {hi}, {a2}",
            "ldrsh {t}, [{bp}, #28]",
            "mla {a3}, {t}, {lo}, {a3}",
            "ldrsh {t}, [{bp}, #30]",
            "mla {a3}, {t}, {hi}, {a3}",
            "adds {bp}, {bp}, #32",
            "subs {n}, {n}, #1",
            "bne 2b",
            wp = inout(reg) weights.as_ptr() => _,
            bp = inout(reg) block.as_ptr() => _,
            n = inout(reg) groups => _,
            w = out(reg) _,
            lo = out(reg) _,
            hi = out(reg) _,
            t = out(reg) _,
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            a2 = inout(reg) a2,
            a3 = inout(reg) a3,
            options(nostack, readonly),
        );
    }
    *acc = [a0, a1, a2, a3];
}

// The assembly below and the SSE2 loop are written for four pixels per block.
const _: () = assert!(BLOCK == 4);

/// A weight word split as SXTB16 splits it: its halfword pairs `(w0, w2)`, `(w1, w3)`, side
/// by side in 64 bits (in memory, the even pair's word first). Split once per filter, the
/// SMLAD loop loads both with one LDRD, and the SSE2 loop uses them as PMADDWD lanes.
#[cfg(any(ember_sse2, ember_dsp))]
#[inline(always)]
fn split_word(w: &[i8]) -> u64 {
    use crate::simd::{sxtb16, sxtb16_ror8, word};
    let w = word(w);
    (sxtb16_ror8(w) as u64) << 32 | sxtb16(w) as u64
}

/// Every group of `whole` split by [`split_word`] into `lanes`.
#[cfg(ember_sse2)]
#[inline(always)]
fn split_words(whole: &[i8], lanes: &mut [u64]) {
    for (l, w) in lanes.iter_mut().zip(whole.chunks_exact(4)) {
        *l = split_word(w);
    }
}

/// [`split_word`] over every group of `whole` into `lanes`, two groups a pass in assembly
/// (two LDR, four SXTB16, two STRD): the split is redone for each tile, so it counts.
#[cfg(ember_dsp)]
#[inline(always)]
fn split_words(whole: &[i8], lanes: &mut [u64]) {
    let n = (whole.len() / 4).min(lanes.len());
    let pairs = n / 2;
    if pairs > 0 {
        // SAFETY: reads `8 · pairs` bytes of `whole` (by LDR, which takes the unaligned
        // address; LDRD would not) and writes `2 · pairs` u64 of `lanes` (8-aligned, for
        // STRD), both within the slices as `2 · pairs <= n`.
        unsafe {
            core::arch::asm!(
                "2:",
                "ldr {a}, [{src}], #4",
                "ldr {b}, [{src}], #4",
                "sxtb16 {c}, {a}",
                "sxtb16 {a}, {a}, ror #8",
                "strd {c}, {a}, [{dst}], #8",
                "sxtb16 {c}, {b}",
                "sxtb16 {b}, {b}, ror #8",
                "strd {c}, {b}, [{dst}], #8",
                "subs {n}, {n}, #1",
                "bne 2b",
                src = inout(reg) whole.as_ptr() => _,
                dst = inout(reg) lanes.as_mut_ptr() => _,
                n = inout(reg) pairs => _,
                a = out(reg) _,
                b = out(reg) _,
                c = out(reg) _,
                options(nostack),
            );
        }
    }
    if n % 2 == 1 {
        lanes[n - 1] = split_word(&whole[4 * (n - 1)..]);
    }
}

/// [`mac_groups_portable`] for the host simulation on x86-64, in SSE2 (part of every x86-64),
/// with the weights already split by [`split_word`]: per group, one PMADDWD per two pixels
/// gives each pixel's two SMLAD products side by side. The sums are exact (|w · x| < 2^23)
/// and the accumulators wrap as SMLAD's do, so the bits are the same.
#[cfg(ember_sse2)]
#[inline(always)]
fn mac_groups_sse2(lanes: &[u64], block: &[u32], acc: &mut [i32; BLOCK]) {
    use core::arch::x86_64::*;
    // SAFETY: SSE2 is in the x86-64 baseline; each unaligned load reads 4 words of a chunk of
    // `2 · BLOCK` = 8, and the stores write local arrays of 4.
    unsafe {
        let (mut p01, mut p23) = (_mm_setzero_si128(), _mm_setzero_si128());
        for (&w, pairs) in lanes.iter().zip(block.chunks_exact(2 * BLOCK)) {
            let w = _mm_set1_epi64x(w as i64);
            let x = pairs.as_ptr() as *const __m128i;
            p01 = _mm_add_epi32(p01, _mm_madd_epi16(w, _mm_loadu_si128(x)));
            p23 = _mm_add_epi32(p23, _mm_madd_epi16(w, _mm_loadu_si128(x.add(1))));
        }
        // Lanes (even, odd) of pixels 0 and 1, and of 2 and 3: add each pair.
        let (mut lo, mut hi) = ([0i32; 4], [0i32; 4]);
        _mm_storeu_si128(lo.as_mut_ptr() as *mut __m128i, p01);
        _mm_storeu_si128(hi.as_mut_ptr() as *mut __m128i, p23);
        let pairs = lo.chunks_exact(2).chain(hi.chunks_exact(2));
        for (a, pair) in acc.iter_mut().zip(pairs) {
            *a = a.wrapping_add(pair[0]).wrapping_add(pair[1]);
        }
    }
}

/// A filter as whole groups of four weights, the last zero-padded (into `pad`) when its
/// length is not a multiple of four: the im2col block's taps past the filter are zero, so the
/// padding adds nothing, and every loop runs on whole groups.
struct Filter<'a> {
    #[cfg(not(ember_dsp))]
    whole: &'a [i8],
    /// The groups split once per filter ([`split_word`]), where the loop reads them so.
    #[cfg(any(ember_sse2, ember_dsp))]
    lanes: &'a [u64],
}

/// Room for a filter's split weights: none where nothing splits them ahead.
#[cfg(any(ember_sse2, ember_dsp))]
const LANES: usize = MAX_TAPS / 4;
#[cfg(not(any(ember_sse2, ember_dsp)))]
const LANES: usize = 0;

/// Room for a filter padded to whole groups.
const PADDED_FILTER: usize = MAX_TAPS + 3;

impl<'a> Filter<'a> {
    #[cfg_attr(not(any(ember_sse2, ember_dsp)), allow(unused_variables))]
    fn new(
        weights: &'a [i8],
        pad: &'a mut [i8; PADDED_FILTER],
        lanes: &'a mut [u64; LANES],
    ) -> Self {
        let groups = weights.len().div_ceil(4);
        let whole = if weights.len().is_multiple_of(4) {
            weights
        } else {
            let pad = &mut pad[..4 * groups];
            pad[..weights.len()].copy_from_slice(weights);
            pad[weights.len()..].fill(0);
            pad
        };
        #[cfg(any(ember_sse2, ember_dsp))]
        let lanes = {
            split_words(whole, lanes);
            &lanes[..groups.min(LANES)]
        };
        Self {
            #[cfg(not(ember_dsp))]
            whole,
            #[cfg(any(ember_sse2, ember_dsp))]
            lanes,
        }
    }

    /// Runs the filter over every block of `tile`, each pixel's accumulator starting at
    /// `init`, and writes to `out` each block's four sums, or with `POOL` their maximum.
    #[cfg(not(ember_dsp))]
    #[inline(always)]
    fn over_blocks<const POOL: bool>(&self, tile: &[u32], init: i32, out: &mut [i32]) {
        // A filter has at least one tap; `max` only keeps `chunks_exact` from panicking.
        let blocks = tile.chunks_exact((self.whole.len() / 4 * 2 * BLOCK).max(1));
        let per_block = if POOL { 1 } else { BLOCK };
        for (block, out) in blocks.zip(out.chunks_exact_mut(per_block)) {
            let mut acc = [init; BLOCK];
            #[cfg(ember_sse2)]
            mac_groups_sse2(self.lanes, block, &mut acc);
            #[cfg(not(ember_sse2))]
            mac_groups(self.whole, block, &mut acc);
            if POOL {
                out[0] = acc[0].max(acc[1]).max(acc[2]).max(acc[3]);
            } else {
                out.copy_from_slice(&acc);
            }
        }
    }

    /// [`over_blocks`](Self::over_blocks) with the block loop in the assembly. Per block: one
    /// LDM and three moves start the accumulators and the weights; the MAC loop runs four
    /// groups a pass (per group one LDRD of split weights, four LDRD of columns and eight
    /// SMLAD), entering part-way when the count is not a multiple of four; then one store of
    /// the four sums, or three compares and one store of their maximum. The loop's constants
    /// wait on the stack, as the twelve registers the loop may use are all taken.
    #[cfg(ember_dsp)]
    #[inline(always)]
    fn over_blocks<const POOL: bool>(&self, tile: &[u32], init: i32, out: &mut [i32]) {
        let groups = self.lanes.len();
        let per_block = if POOL { 1 } else { BLOCK };
        let blocks = match groups {
            0 => 0,
            g => (tile.len() / (g * 2 * BLOCK)).min(out.len() / per_block),
        };
        if blocks == 0 {
            return;
        }
        let lanes = self.lanes.as_ptr_range();
        let out_end = out[blocks * per_block..].as_ptr();
        // One group of four weights against the block's four pixels.
        macro_rules! group {
            () => {
                concat!(
                    "ldrd {we}, {wo}, [{wp}], #8\n",
                    "ldrd {x0}, {x1}, [{bp}], #8\n",
                    "smlad r0, {we}, {x0}, r0\n",
                    "smlad r0, {wo}, {x1}, r0\n",
                    "ldrd {x0}, {x1}, [{bp}], #8\n",
                    "smlad r1, {we}, {x0}, r1\n",
                    "smlad r1, {wo}, {x1}, r1\n",
                    "ldrd {x0}, {x1}, [{bp}], #8\n",
                    "smlad r2, {we}, {x0}, r2\n",
                    "smlad r2, {wo}, {x1}, r2\n",
                    "ldrd {x0}, {x1}, [{bp}], #8\n",
                    "smlad r3, {we}, {x0}, r3\n",
                    "smlad r3, {wo}, {x1}, r3\n",
                )
            };
        }
        macro_rules! block_loop {
            ($entry:literal, $($store:literal),*) => {
                // SAFETY: each block reads the `groups` split weights (`lanes`) and
                // `groups · 8` words of `tile`, for `blocks` blocks within `tile`; it writes
                // `per_block` words of `out` per block, up to `out_end`. Three words of stack
                // below the caller's are freed at the end.
                unsafe {
                    core::arch::asm!(
                        "sub sp, sp, #16",
                        "str {we}, [sp]",
                        "str {wo}, [sp, #4]",
                        "str {x0}, [sp, #8]",
                        "2:",
                        // The accumulators' start and the weights' first group, at once.
                        "ldm sp, {{r0, {wp}}}",
                        "mov r1, r0",
                        "mov r2, r0",
                        "mov r3, r0",
                        $entry,
                        "3:",
                        group!(),
                        "5:",
                        group!(),
                        "6:",
                        group!(),
                        "4:",
                        group!(),
                        "cmp {wp}, {wend}",
                        "bne 3b",
                        $($store,)*
                        "ldr {x0}, [sp, #8]",
                        "cmp {out}, {x0}",
                        "bne 2b",
                        "add sp, sp, #16",
                        we = inout(reg) init => _,
                        wo = inout(reg) lanes.start => _,
                        x0 = inout(reg) out_end => _,
                        x1 = out(reg) _,
                        wp = out(reg) _,
                        wend = in(reg) lanes.end,
                        bp = inout(reg) tile.as_ptr() => _,
                        out = inout(reg) out.as_mut_ptr() => _,
                        out("r0") _,
                        out("r1") _,
                        out("r2") _,
                        out("r3") _,
                    )
                }
            };
        }
        // The loop runs four groups a pass; a count that is not a multiple of four enters it
        // that many groups before the end of the pass.
        macro_rules! with_entry {
            ($($store:literal),*) => {
                match groups % 4 {
                    1 => block_loop!("b 4f", $($store),*),
                    2 => block_loop!("b 6f", $($store),*),
                    3 => block_loop!("b 5f", $($store),*),
                    _ => block_loop!("", $($store),*),
                }
            };
        }
        if POOL {
            with_entry!(
                "cmp r0, r1",
                "it lt",
                "movlt r0, r1",
                "cmp r2, r3",
                "it lt",
                "movlt r2, r3",
                "cmp r0, r2",
                "it lt",
                "movlt r0, r2",
                "str r0, [{out}], #4"
            );
        } else {
            with_entry!("stmia {out}!, {{r0, r1, r2, r3}}");
        }
    }
}

/// Words of im2col data gathered at a time: one block of the largest kernel, or many blocks
/// of a small one. With the DSP extension every filter is split once per tile, so the tile is
/// larger there (10 KiB: the nine blocks of the MNIST CNN's last convolution, 3×3 over 16
/// channels, in one tile), trading 5.6 KiB of stack for 7 % fewer instructions.
const TILE_WORDS: usize = if cfg!(ember_dsp) {
    9 * MAX_TAPS / 8 * BLOCK
} else {
    MAX_TAPS / 2 * BLOCK
};
/// Most output pixels in a tile (their accumulators live on the stack).
const TILE_PIXELS: usize = if SMALL_RAM { 64 } else { 256 };

/// Bytes of weights a convolution may copy to widen its kernel rows (the MNIST CNN's first
/// layer needs 96).
const WIDE_WEIGHTS: usize = if SMALL_RAM { 256 } else { 1024 };

/// 2-D convolution, weights `[out_c][kh][kw][in_c]`, zero padding (the input zero point).
///
/// Output pixels are gathered (im2col) a tile at a time, four pixels to a block; then each
/// filter passes over every block of the tile, and its outputs are requantized in one tight
/// loop. A short last block repeats its last pixel.
///
/// When a kernel row (`kw · in_c` taps) is not a whole number of words, as in a first layer
/// on a grey or RGB image, the weights are copied with each row padded by zeros to a multiple
/// of four (if they fit in `WIDE_WEIGHTS`): then every row of the receptive field is whole
/// words read straight from the input.
pub fn conv(layer: &Conv, input: &[i8], output: &mut [i8]) {
    convolve(layer, None, input, output);
}

/// Whether [`conv`] takes `layer`: one group, no dilation, and a filter of at most
/// `MAX_TAPS` taps (its im2col block lives on the stack).
pub fn takes(layer: &Conv) -> bool {
    let taps = layer.kernel.0 as usize * layer.kernel.1 as usize * layer.input.c as usize;
    layer.groups == 1 && layer.dilation == (1, 1) && taps <= MAX_TAPS
}

/// Whether `pool` right after `conv` can run fused into it ([`conv_max_pool`]): a 2×2 max
/// pool of stride 2 without padding over the convolution's output, clamps that overlap, and
/// no negative multiplier. Requantization is then monotonic, so the maximum of four
/// requantized outputs is the requantized maximum of their accumulators, bit for bit.
pub fn fuses(conv: &Conv, pool: &Pool) -> bool {
    takes(conv)
        && pool.kind == PoolKind::Max
        && pool.kernel == (2, 2)
        && pool.stride == (2, 2)
        && pool.padding == (0, 0)
        && pool.input == conv.output
        && pool.output.h == conv.output.h / 2
        && pool.output.w == conv.output.w / 2
        && conv.act_max >= pool.act_min
        && pool.act_max >= conv.act_min
        && conv.multiplier.iter().all(|&m| m >= 0)
}

/// The convolution and the 2×2 max pool after it in one pass (see [`fuses`]): each block of
/// four pixels is one pooling window, so each filter requantizes one value per window, and
/// convolution outputs no window covers are never computed. `output` is the pool's.
pub fn conv_max_pool(layer: &Conv, pool: &Pool, input: &[i8], output: &mut [i8]) {
    convolve(layer, Some(pool), input, output);
}

/// [`conv`], or [`conv_max_pool`] when `pool` is given.
fn convolve(layer: &Conv, pool: Option<&Pool>, input: &[i8], output: &mut [i8]) {
    let oc = layer.output.c as usize;
    let (kh, seg) = (
        layer.kernel.0 as usize,
        layer.kernel.1 as usize * layer.input.c as usize,
    );
    let wide_row = seg.div_ceil(4) * 4;
    let mut wide = [0i8; WIDE_WEIGHTS];
    // Widened, a filter must still fit one im2col block (`MAX_TAPS`).
    let widen = seg % 4 != 0 && oc * kh * wide_row <= WIDE_WEIGHTS && kh * wide_row <= MAX_TAPS;
    let (weights, row) = if widen {
        let rows = layer.weights.chunks_exact(seg);
        for (dst, src) in wide.chunks_exact_mut(wide_row).zip(rows) {
            dst[..seg].copy_from_slice(src);
        }
        (&wide[..oc * kh * wide_row], wide_row)
    } else {
        (layer.weights, seg)
    };
    let geometry = Im2col::new(layer, row);
    let block_words = geometry.groups * 2 * BLOCK;
    let tile_pixels = (TILE_WORDS / block_words * BLOCK).min(TILE_PIXELS);
    let order = PixelOrder::new(layer, pool);
    // Not zeroed: each block is written whole before the filters read it.
    let mut tile = [MaybeUninit::<u32>::uninit(); TILE_WORDS];
    let mut buf: Buffer = [MaybeUninit::uninit(); _];
    let mut windows = geometry.windows(input, &mut buf);
    for first in (0..order.pixels).step_by(tile_pixels) {
        let count = tile_pixels.min(order.pixels - first);
        let blocks = count.div_ceil(BLOCK);
        for (b, block) in tile.chunks_exact_mut(block_words).take(blocks).enumerate() {
            let pixel = |slot: usize| order.pixel(first + (b * BLOCK + slot).min(count - 1));
            match &mut windows {
                Windows::Rows(source) => {
                    let starts = order
                        .block(first, b, count)
                        .map(|p| geometry.window_start(source, p));
                    geometry.gather_block(source, starts, block);
                }
                Windows::Taps(scratch) => {
                    block.fill(MaybeUninit::new(0));
                    // SAFETY: every word was just written.
                    let block = unsafe { &mut *(block as *mut [MaybeUninit<u32>] as *mut [u32]) };
                    for slot in 0..BLOCK {
                        geometry.gather(input, pixel(slot), scratch, block, slot);
                    }
                }
            }
        }
        // SAFETY: the first `blocks` blocks were each written whole just above.
        let tile = unsafe {
            &*(&tile[..blocks * block_words] as *const [MaybeUninit<u32>] as *const [u32])
        };
        let outputs = match pool {
            Some(_) => first / BLOCK..first / BLOCK + blocks,
            None => first..first + count,
        };
        filters_over_tile(
            layer,
            weights,
            pool.map(|p| (p.act_min, p.act_max)),
            tile,
            &mut output[outputs.start * oc..outputs.end * oc],
        );
    }
}

/// The order in which a convolution computes its output pixels: row by row, or, fused with a
/// 2×2 pool, window by window (four pixels each, which make one block).
struct PixelOrder {
    /// Pixels to compute.
    pixels: usize,
    /// Columns of the convolution's output.
    width: usize,
    /// Columns of the pool's output, when fused.
    windows_per_row: Option<usize>,
}

impl PixelOrder {
    fn new(layer: &Conv, pool: Option<&Pool>) -> Self {
        let width = layer.output.w as usize;
        match pool {
            Some(p) => Self {
                pixels: p.output.h as usize * p.output.w as usize * BLOCK,
                width,
                windows_per_row: Some(p.output.w as usize),
            },
            None => Self {
                pixels: layer.output.h as usize * width,
                width,
                windows_per_row: None,
            },
        }
    }

    /// Row and column in the convolution's output of the pixels of block `b` of the tile
    /// whose first pixel is the `first`-th computed and which holds `count` pixels (a short
    /// last block repeats its last pixel): one division per block, or per pixel unfused.
    #[inline(always)]
    fn block(&self, first: usize, b: usize, count: usize) -> [(usize, usize); BLOCK] {
        match self.windows_per_row {
            Some(per_row) => {
                let window = first / BLOCK + b;
                let (y, x) = (2 * (window / per_row), 2 * (window % per_row));
                [(y, x), (y, x + 1), (y + 1, x), (y + 1, x + 1)]
            }
            None => core::array::from_fn(|k| {
                let v = first + (b * BLOCK + k).min(count - 1);
                (v / self.width, v % self.width)
            }),
        }
    }

    /// Index in the convolution's output of the `v`-th pixel computed.
    #[inline(always)]
    fn pixel(&self, v: usize) -> usize {
        match self.windows_per_row {
            None => v,
            Some(per_row) => {
                let (window, k) = (v / BLOCK, v % BLOCK);
                let (py, px) = (window / per_row, window % per_row);
                (2 * py + k / 2) * self.width + 2 * px + k % 2
            }
        }
    }
}

/// Runs every filter over a tile of im2col blocks and writes the requantized outputs of its
/// pixels (`out`, HWC): four per block, or, when fused with a max pool whose clamp is
/// `pool_clamp`, the block's maximum. Out of line, so that the register allocator sees only
/// this loop.
#[inline(never)]
fn filters_over_tile(
    layer: &Conv,
    weights: &[i8],
    pool_clamp: Option<(i8, i8)>,
    tile: &[u32],
    out: &mut [i8],
) {
    let oc = layer.output.c as usize;
    let taps = weights.len() / oc;
    let outputs = out.len() / oc;
    let mut accs = [0i32; TILE_PIXELS + BLOCK];
    let mut pad = [0i8; PADDED_FILTER];
    let mut lanes = [0u64; LANES];
    for (c, filter) in weights.chunks_exact(taps).enumerate() {
        let filter = Filter::new(filter, &mut pad, &mut lanes);
        let requant = match pool_clamp {
            Some((min, max)) => layer.channel(c).clamped(min, max),
            None => layer.channel(c),
        };
        match pool_clamp {
            Some(_) => filter.over_blocks::<true>(tile, requant.bias(), &mut accs),
            None => filter.over_blocks::<false>(tile, requant.bias(), &mut accs),
        }
        requant.apply_strided(&accs[..outputs], &mut out[c..], oc);
    }
}

#[cfg(all(test, ember_sse2))]
mod sse2_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The SSE2 loop gives every pixel's accumulator the bits of the SMLAD definition, for
        /// any weights, any halfword pairs (wider than a real im2col's) and any start.
        #[test]
        fn mac_groups_sse2_equals_the_portable_loop(
            groups in 0usize..=MAX_TAPS / 4,
            seed in proptest::collection::vec(any::<u32>(), 2 * BLOCK * (MAX_TAPS / 4)),
            weights in proptest::collection::vec(any::<i8>(), MAX_TAPS),
            init in any::<[i32; BLOCK]>(),
        ) {
            let (weights, block) = (&weights[..4 * groups], &seed[..2 * BLOCK * groups]);
            let (mut pad, mut lanes) = ([0i8; PADDED_FILTER], [0u64; LANES]);
            let filter = Filter::new(weights, &mut pad, &mut lanes);
            let mut fast = [0; BLOCK];
            filter.over_blocks::<false>(block, 0, &mut fast);
            for (f, i) in fast.iter_mut().zip(init) {
                *f = f.wrapping_add(i);
            }
            let mut want = init;
            mac_groups_portable(weights, block, &mut want);
            prop_assert_eq!(fast, want);
        }
    }
}
