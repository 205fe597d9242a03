//! Convolution: im2col blocks of four output pixels, each filter one pass over a block.

use core::mem::MaybeUninit;

use super::im2col::{Buffer, Im2col, Windows};
use super::{BLOCK, MAX_TAPS, SMALL_RAM};
use crate::model::{Conv, ConvWeights, Pool, PoolKind};

/// Adds `Σ w · x` over whole groups of four weights to each pixel's accumulator in `acc`.
/// `weights` holds two words per group, in the packed form ([`ConvWeights::Packed`]);
/// `block` holds `2 · BLOCK` words per group, laid out as [`Im2col::gather`] writes them.
/// The definition the SMLAD, Cortex-M3 and SSE2 loops are tested against.
#[cfg(any(test, not(any(ember_dsp, ember_sse2, ember_thumb2))))]
#[inline(always)]
fn mac_groups_portable(weights: &[u32], block: &[u32], acc: &mut [i32; BLOCK]) {
    use crate::simd::smlad;
    for (w, pairs) in weights.chunks_exact(2).zip(block.chunks_exact(2 * BLOCK)) {
        for (a, x) in acc.iter_mut().zip(pairs.chunks_exact(2)) {
            *a = smlad(w[1], x[1], smlad(w[0], x[0], *a));
        }
    }
}

#[cfg(not(any(ember_dsp, ember_sse2, ember_thumb2)))]
use mac_groups_portable as mac_groups;

/// [`mac_groups_portable`] on ARMv7-M without the DSP extension (the Cortex-M3): no SMLAD, so
/// each tap is one LDRSH and one MLA. Per group one LDRD loads the packed pairs, each split
/// into its two weights (SXTH/ASR) and both applied to the four pixels' matching halfwords,
/// read at fixed offsets from the group's start: 40 instructions for 16 MACs.
#[cfg(all(ember_thumb2, not(ember_dsp)))]
#[inline(always)]
fn mac_groups(weights: &[u32], block: &[u32], acc: &mut [i32; BLOCK]) {
    let groups = weights.len() / 2;
    let block = &block[..groups * 2 * BLOCK];
    if groups == 0 {
        return;
    }
    let [mut a0, mut a1, mut a2, mut a3] = *acc;
    // SAFETY: the loop reads `2 · groups` words from `weights` (word-aligned, as LDRD needs)
    // and `groups · 8` words from `block` (halfword loads at offsets 0..32 of each group's 32
    // bytes), both within the slices checked above; it writes only the named registers and
    // the flags.
    unsafe {
        core::arch::asm!(
            "2:",
            "ldrd {hi}, {w}, [{wp}], #8",
            // Taps 0 and 2: the low and high halfwords of each pixel's first word.
            "sxth {lo}, {hi}",
            "asr {hi}, {hi}, #16",
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
            "sxth {lo}, {w}",
            "asr {hi}, {w}, #16",
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

/// [`mac_groups_portable`] for the host simulation on x86-64, in SSE2 (part of every x86-64),
/// on the packed weights: per group, one PMADDWD per two pixels
/// gives each pixel's two SMLAD products side by side. The sums are exact (|w · x| < 2^23)
/// and the accumulators wrap as SMLAD's do, so the bits are the same.
#[cfg(ember_sse2)]
#[inline(always)]
fn mac_groups_sse2(weights: &[u32], block: &[u32], acc: &mut [i32; BLOCK]) {
    use core::arch::x86_64::*;
    // SAFETY: SSE2 is in the x86-64 baseline; each unaligned load reads 4 words of a chunk of
    // `2 · BLOCK` = 8, and the stores write local arrays of 4.
    unsafe {
        let (mut p01, mut p23) = (_mm_setzero_si128(), _mm_setzero_si128());
        for (w, pairs) in weights.chunks_exact(2).zip(block.chunks_exact(2 * BLOCK)) {
            let w = _mm_set1_epi64x(((w[1] as u64) << 32 | w[0] as u64) as i64);
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

/// One filter in the packed form: two words per group of four taps.
struct Filter<'a> {
    words: &'a [u32],
}

impl Filter<'_> {
    /// Runs the filter over every block of `tile`, each pixel's accumulator starting at
    /// `init`, and writes to `out` each block's four sums, or with `POOL` their maximum.
    #[cfg(not(ember_dsp))]
    #[inline(always)]
    fn over_blocks<const POOL: bool>(&self, tile: &[u32], init: i32, out: &mut [i32]) {
        // A filter has at least one tap; `max` only keeps `chunks_exact` from panicking.
        let blocks = tile.chunks_exact((self.words.len() * BLOCK).max(1));
        let per_block = if POOL { 1 } else { BLOCK };
        for (block, out) in blocks.zip(out.chunks_exact_mut(per_block)) {
            let mut acc = [init; BLOCK];
            #[cfg(ember_sse2)]
            mac_groups_sse2(self.words, block, &mut acc);
            #[cfg(not(ember_sse2))]
            mac_groups(self.words, block, &mut acc);
            if POOL {
                out[0] = acc[0].max(acc[1]).max(acc[2]).max(acc[3]);
            } else {
                out.copy_from_slice(&acc);
            }
        }
    }

    /// [`over_blocks`](Self::over_blocks) with the block loop in the assembly. Per block: one
    /// LDM and three moves start the accumulators and the weights; the MAC loop runs four
    /// groups a pass (per group one LDRD of packed weights, four LDRD of columns and eight
    /// SMLAD), entering part-way when the count is not a multiple of four; then one store of
    /// the four sums, or three compares and one store of their maximum. The loop's constants
    /// wait on the stack, as the twelve registers the loop may use are all taken.
    #[cfg(ember_dsp)]
    #[inline(always)]
    fn over_blocks<const POOL: bool>(&self, tile: &[u32], init: i32, out: &mut [i32]) {
        let groups = self.words.len() / 2;
        let per_block = if POOL { 1 } else { BLOCK };
        let blocks = match groups {
            0 => 0,
            g => (tile.len() / (g * 2 * BLOCK)).min(out.len() / per_block),
        };
        if blocks == 0 {
            return;
        }
        let lanes = self.words.as_ptr_range();
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
                // SAFETY: each block reads the `groups` packed pairs (`lanes`, word-aligned) and
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
/// of a small one. With the DSP extension each filter's pass over a tile has a fixed cost, so
/// the tile is larger there (10 KiB: the nine blocks of the MNIST CNN's last convolution, 3×3
/// over 16 channels, in one tile).
const TILE_WORDS: usize = if cfg!(ember_dsp) {
    9 * MAX_TAPS / 8 * BLOCK
} else {
    MAX_TAPS / 2 * BLOCK
};
/// Most output pixels in a tile (their accumulators live on the stack).
const TILE_PIXELS: usize = if SMALL_RAM { 64 } else { 256 };

/// 2-D convolution with packed weights ([`ConvWeights::Packed`]), zero padding (the input
/// zero point).
///
/// Output pixels are gathered (im2col) a tile at a time, four pixels to a block; then each
/// filter passes over every block of the tile, and its outputs are requantized in one tight
/// loop. A short last block repeats its last pixel. The blocks' kernel rows are as long as
/// the packed filters' ([`Conv::im2col_row`]).
pub fn conv(layer: &Conv, input: &[i8], output: &mut [i8]) {
    convolve(layer, None, input, output);
}

/// Whether [`conv`] takes `layer`: its weights are packed, which a checked layer has only
/// where [`Conv::im2col_fits`].
pub fn takes(layer: &Conv) -> bool {
    matches!(layer.weights, ConvWeights::Packed(_))
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
    let ConvWeights::Packed(weights) = layer.weights else {
        return;
    };
    let oc = layer.output.c as usize;
    let geometry = Im2col::new(layer, layer.im2col_row());
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
    weights: &[u32],
    pool_clamp: Option<(i8, i8)>,
    tile: &[u32],
    out: &mut [i8],
) {
    let oc = layer.output.c as usize;
    let words = weights.len() / oc;
    let outputs = out.len() / oc;
    let mut accs = [0i32; TILE_PIXELS + BLOCK];
    for (c, filter) in weights.chunks_exact(words).enumerate() {
        let filter = Filter { words: filter };
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
            weights in proptest::collection::vec(any::<u32>(), MAX_TAPS / 2),
            init in any::<[i32; BLOCK]>(),
        ) {
            let (weights, block) = (&weights[..2 * groups], &seed[..2 * BLOCK * groups]);
            let filter = Filter { words: weights };
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
