//! Fully connected layers, rows in pairs.

use crate::model::FullyConnected;
#[cfg(any(test, not(ember_sse2)))]
use crate::simd::{pack16, sadd16, smlad, sxtb16, sxtb16_ror8, word};

/// `Σ (x - zp) · w` of two weight rows against one int8 input, offset on the fly. The
/// definition the SSE2 twin is tested against.
#[cfg(any(test, not(ember_sse2)))]
#[inline(always)]
fn dot_rows_2_portable(x: &[i8], zp: i8, wa: &[i8], wb: &[i8]) -> (i32, i32) {
    let offset = pack16(-(zp as i32), -(zp as i32));
    let (mut acc_a, mut acc_b) = (0i32, 0i32);
    let groups = x
        .chunks_exact(4)
        .zip(wa.chunks_exact(4).zip(wb.chunks_exact(4)));
    for (xg, (ga, gb)) in groups {
        let xw = word(xg);
        let (x_even, x_odd) = (sadd16(sxtb16(xw), offset), sadd16(sxtb16_ror8(xw), offset));
        let (a, b) = (word(ga), word(gb));
        acc_a = smlad(sxtb16_ror8(a), x_odd, smlad(sxtb16(a), x_even, acc_a));
        acc_b = smlad(sxtb16_ror8(b), x_odd, smlad(sxtb16(b), x_even, acc_b));
    }
    let tail = x.len() / 4 * 4;
    for ((&x, &a), &b) in x[tail..].iter().zip(&wa[tail..]).zip(&wb[tail..]) {
        let x = x as i32 - zp as i32;
        acc_a += x * a as i32;
        acc_b += x * b as i32;
    }
    (acc_a, acc_b)
}

#[cfg(not(ember_sse2))]
use dot_rows_2_portable as dot_rows_2;

/// [`dot_rows_2_portable`] for the host simulation on x86-64, in SSE2: eight inputs at a time,
/// widened to halfwords and offset, against each row's eight weights by PMADDWD. The products
/// and their sums are exact, so the bits are the same.
#[cfg(ember_sse2)]
#[inline(always)]
fn dot_rows_2(x: &[i8], zp: i8, wa: &[i8], wb: &[i8]) -> (i32, i32) {
    use core::arch::x86_64::*;
    let n = x.len().min(wa.len()).min(wb.len());
    let eights = n / 8 * 8;
    // SAFETY: SSE2 is in the x86-64 baseline; each 8-byte load reads within the first
    // `eights` bytes of a slice at least that long.
    let (mut acc_a, mut acc_b) = unsafe {
        let widen = |p: *const i8| {
            let v = _mm_loadl_epi64(p as *const __m128i);
            _mm_srai_epi16::<8>(_mm_unpacklo_epi8(v, v))
        };
        let zp = _mm_set1_epi16(zp as i16);
        let (mut a, mut b) = (_mm_setzero_si128(), _mm_setzero_si128());
        for k in (0..eights).step_by(8) {
            let xs = _mm_sub_epi16(widen(x.as_ptr().add(k)), zp);
            a = _mm_add_epi32(a, _mm_madd_epi16(xs, widen(wa.as_ptr().add(k))));
            b = _mm_add_epi32(b, _mm_madd_epi16(xs, widen(wb.as_ptr().add(k))));
        }
        let sum = |v: __m128i| {
            let mut lanes = [0i32; 4];
            _mm_storeu_si128(lanes.as_mut_ptr() as *mut __m128i, v);
            lanes.iter().fold(0i32, |s, &l| s.wrapping_add(l))
        };
        (sum(a), sum(b))
    };
    for ((&x, &a), &b) in x[eights..n].iter().zip(&wa[eights..n]).zip(&wb[eights..n]) {
        let x = x as i32 - zp as i32;
        acc_a += x * a as i32;
        acc_b += x * b as i32;
    }
    (acc_a, acc_b)
}

/// Fully connected layer, weights `[outputs][inputs]`, rows in pairs (an odd last row is
/// paired with itself).
pub fn fully_connected(layer: &FullyConnected, input: &[i8], output: &mut [i8]) {
    #[cfg(ember_thumb2)]
    if rows_3::fully_connected(layer, input, output) {
        return;
    }
    let (inputs, outputs) = (layer.inputs as usize, layer.outputs as usize);
    let x = &input[..inputs];
    for o in (0..outputs).step_by(2) {
        let p = (o + 1).min(outputs - 1);
        let row = |r: usize| &layer.weights[r * inputs..(r + 1) * inputs];
        let (acc_o, acc_p) = dot_rows_2(x, layer.input_zero_point, row(o), row(p));
        output[o] = layer.channel(o).apply(acc_o);
        output[p] = layer.channel(p).apply(acc_p);
    }
}

/// The Thumb-2 path: the input widened (and offset) once, as SXTB16 splits words, then three
/// rows a pass, by SMLAD or, on the Cortex-M3, by LDRSH/LDRSB and MLA.
#[cfg(ember_thumb2)]
mod rows_3 {
    use crate::model::FullyConnected;
    use crate::simd::{pack16, sadd16, sxtb16, sxtb16_ror8, word};

    /// Most inputs widened on the stack (1 KiB as halfwords).
    const MAX_INPUTS: usize = 512;

    /// Runs `layer` if its inputs are whole words and fit [`MAX_INPUTS`]; else returns false
    /// and leaves it to the pairs.
    pub(super) fn fully_connected(layer: &FullyConnected, input: &[i8], output: &mut [i8]) -> bool {
        let (inputs, outputs) = (layer.inputs as usize, layer.outputs as usize);
        let fits = inputs > 0
            && inputs.is_multiple_of(4)
            && inputs <= MAX_INPUTS
            && input.len() >= inputs
            && output.len() >= outputs
            && layer.weights.len() >= inputs * outputs;
        if !fits {
            return false;
        }
        let zp = -(layer.input_zero_point as i32);
        let offset = pack16(zp, zp);
        let mut wide = [0u32; MAX_INPUTS / 2];
        let wide = &mut wide[..inputs / 2];
        for (pair, x) in wide.chunks_exact_mut(2).zip(input.chunks_exact(4)) {
            let x = word(x);
            pair[0] = sadd16(sxtb16(x), offset);
            pair[1] = sadd16(sxtb16_ror8(x), offset);
        }
        if outputs < 3 {
            for (o, out) in output[..outputs].iter_mut().enumerate() {
                let acc = dot_rows_3(wide, &layer.weights[o * inputs..], 0);
                *out = layer.channel(o).apply(acc[0]);
            }
            return true;
        }
        // Rows `o, o + 1, o + 2`; the last pass starts at `outputs - 3`, redoing a row or two.
        for o in (0..outputs).step_by(3).map(|o| o.min(outputs - 3)) {
            let acc = dot_rows_3(wide, &layer.weights[o * inputs..], inputs);
            for (k, acc) in acc.into_iter().enumerate() {
                output[o + k] = layer.channel(o + k).apply(acc);
            }
        }
        true
    }

    /// The groups of four inputs in `wide`, when three rows of that many bytes, `step` apart,
    /// lie in `rows`: the bound both twins of [`dot_rows_3`] read within.
    fn groups_in(wide: &[u32], rows: &[i8], step: usize) -> Option<usize> {
        let groups = wide.len() / 2;
        (groups > 0 && rows.len() >= 2 * step + 4 * groups).then_some(groups)
    }

    /// `Σ x · w` of the widened input `wide` against three rows `step` bytes apart from the
    /// start of `rows`: per group of four, one LDRD of `x`, and per row one weight load, two
    /// SXTB16 and two SMLAD.
    #[cfg(ember_dsp)]
    fn dot_rows_3(wide: &[u32], rows: &[i8], step: usize) -> [i32; 3] {
        let Some(groups) = groups_in(wide, rows, step) else {
            return [0; 3];
        };
        let (mut a0, mut a1, mut a2) = (0i32, 0i32, 0i32);
        // SAFETY: reads `groups` words from `wide` pairs and `4 · groups` bytes of each of the
        // three rows (at 0, `step`, `2 · step`), all within the slices, as checked above;
        // LDR takes the unaligned address on ARMv7E-M.
        unsafe {
            core::arch::asm!(
                "2:",
                "ldrd {x0}, {x1}, [{xp}], #8",
                "ldr {w}, [{wp}, {k}, lsl #1]",
                "sxtb16 {e}, {w}",
                "sxtb16 {w}, {w}, ror #8",
                "smlad {a2}, {e}, {x0}, {a2}",
                "smlad {a2}, {w}, {x1}, {a2}",
                "ldr {w}, [{wp}, {k}]",
                "sxtb16 {e}, {w}",
                "sxtb16 {w}, {w}, ror #8",
                "smlad {a1}, {e}, {x0}, {a1}",
                "smlad {a1}, {w}, {x1}, {a1}",
                "ldr {w}, [{wp}], #4",
                "sxtb16 {e}, {w}",
                "sxtb16 {w}, {w}, ror #8",
                "smlad {a0}, {e}, {x0}, {a0}",
                "smlad {a0}, {w}, {x1}, {a0}",
                "subs {n}, {n}, #1",
                "bne 2b",
                xp = inout(reg) wide.as_ptr() => _,
                wp = inout(reg) rows.as_ptr() => _,
                k = in(reg) step,
                n = inout(reg) groups => _,
                x0 = out(reg) _,
                x1 = out(reg) _,
                w = out(reg) _,
                e = out(reg) _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                options(nostack, readonly),
            );
        }
        [a0, a1, a2]
    }

    /// [`dot_rows_3`] on the Cortex-M3 (no SMLAD): per tap one LDRSH of `x` (at its place in
    /// the split pair) and per row one LDRSB and one MLA, 31 instructions per 12 MACs.
    #[cfg(not(ember_dsp))]
    fn dot_rows_3(wide: &[u32], rows: &[i8], step: usize) -> [i32; 3] {
        let Some(groups) = groups_in(wide, rows, step) else {
            return [0; 3];
        };
        let (mut a0, mut a1, mut a2) = (0i32, 0i32, 0i32);
        macro_rules! tap {
            ($x:literal) => {
                concat!(
                    "ldrsh {x}, [{xp}, #",
                    $x,
                    "]\n",
                    "ldrsb {w}, [{wp}, {k}, lsl #1]\n",
                    "mla {a2}, {w}, {x}, {a2}\n",
                    "ldrsb {w}, [{wp}, {k}]\n",
                    "mla {a1}, {w}, {x}, {a1}\n",
                    "ldrsb {w}, [{wp}], #1\n",
                    "mla {a0}, {w}, {x}, {a0}\n",
                )
            };
        }
        // SAFETY: as for the SMLAD twin: `groups` pairs of `wide` and `4 · groups` bytes of each
        // of the three rows, within the slices as checked above.
        unsafe {
            core::arch::asm!(
                "2:",
                // Taps 0..4 sit at halfwords 0, 2, 1, 3 of the pair (SXTB16's order).
                tap!("0"),
                tap!("4"),
                tap!("2"),
                tap!("6"),
                "adds {xp}, {xp}, #8",
                "subs {n}, {n}, #1",
                "bne 2b",
                xp = inout(reg) wide.as_ptr() => _,
                wp = inout(reg) rows.as_ptr() => _,
                k = in(reg) step,
                n = inout(reg) groups => _,
                x = out(reg) _,
                w = out(reg) _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                options(nostack, readonly),
            );
        }
        [a0, a1, a2]
    }
}

#[cfg(all(test, ember_sse2))]
mod sse2_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The SSE2 dot products equal the definition for any length, inputs and zero point.
        #[test]
        fn dot_rows_2_sse2_equals_the_portable_loop(
            rows in proptest::collection::vec(any::<(i8, i8, i8)>(), 0..700),
            zp in any::<i8>(),
        ) {
            let x: Vec<i8> = rows.iter().map(|r| r.0).collect();
            let wa: Vec<i8> = rows.iter().map(|r| r.1).collect();
            let wb: Vec<i8> = rows.iter().map(|r| r.2).collect();
            prop_assert_eq!(
                dot_rows_2(&x, zp, &wa, &wb),
                dot_rows_2_portable(&x, zp, &wa, &wb)
            );
        }
    }
}
