//! Fixed-point requantization, bit-for-bit as gemmlowp and TensorFlow Lite compute it.

/// `round(a · b / 2^31)` with ties away from zero, saturating the one overflowing case
/// (`i32::MIN · i32::MIN`). gemmlowp's `SaturatingRoundingDoublingHighMul`.
///
/// gemmlowp adds a nudge of `2^30` (or `1 - 2^30` for a negative product) and divides by `2^31`
/// truncating toward zero. For a negative product, truncation is `floor(v + 2^31 - 1)`, so both
/// cases are one floor of `a·b + 2^30`: a SMULL, an add with carry and a shift on the device.
#[inline(always)]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    ((a as i64 * b as i64 + (1 << 30)) >> 31) as i32
}

/// `x / 2^exponent` rounded to nearest, ties away from zero. gemmlowp's `RoundingDivideByPOT`.
#[inline(always)]
pub fn rounding_divide_by_pot(x: i32, exponent: u32) -> i32 {
    let exponent = exponent.min(31);
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// `acc · multiplier · 2^shift / 2^31`: TFLite's `MultiplyByQuantizedMultiplier`.
/// `shift > 0` shifts left before the multiplication (saturating), `shift < 0` right after.
#[inline(always)]
pub fn multiply_by_quantized_multiplier(acc: i32, multiplier: i32, shift: i32) -> i32 {
    let left = shift.clamp(0, 30) as u32;
    let right = (-shift).clamp(0, 31) as u32;
    let scaled = acc.saturating_mul(1i32 << left);
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(scaled, multiplier),
        right,
    )
}

/// Requantizes a bias-added accumulator and clamps it to the fused activation `[min, max]`:
/// the definition [`ChannelRequant::apply`] must equal.
pub fn requantize(acc: i32, multiplier: i32, shift: i8, zero_point: i8, min: i8, max: i8) -> i8 {
    let v = multiply_by_quantized_multiplier(acc, multiplier, shift as i32) + zero_point as i32;
    v.clamp(min as i32, max as i32) as i8
}

/// One output channel's bias and requantization, with everything that depends only on the
/// channel worked out once, so that each output costs a long multiply and a few adds.
///
/// For `shift <= -2` with a multiplier other than `i32::MIN` (everything the quantizer makes
/// for this network), gemmlowp's two roundings fold into one. With `P' = acc·m + 2^30`, the
/// high mul is `y = floor(P' / 2^31)` (its nudge and truncation toward zero amount to exactly
/// that floor, see [`saturating_rounding_doubling_high_mul`]); dividing by `2^e` rounding half
/// away from zero is `floor((y + 2^(e-1) - [y < 0]) / 2^e)`; and as `floor(floor(a) + c) / n`
/// is `floor((a + c) / n)` for integers, the result is `S >> (31 + e)` for the 64-bit
/// `S = P' + 2^(e+30) - [P' < 0]·2^31`. For `e >= 2` only the high word of `S` matters:
/// `hi(P') + 2^(e-2) - [P' < 0 and bit 31 of lo(P') clear]` (the borrow of the `2^31`),
/// shifted right by `e - 1`. Any other channel takes the literal definition.
#[derive(Debug, Clone, Copy)]
pub struct ChannelRequant {
    bias: i32,
    multiplier: i32,
    shift: i8,
    /// `2^(e-2)`, added to the high word.
    round: i32,
    /// `e - 1`, the shift of the high word.
    high_shift: u32,
    /// Whether the folded expression applies (see the type's doc).
    fast: bool,
    zero_point: i32,
    min: i32,
    max: i32,
}

impl ChannelRequant {
    /// The channel's bias, Q31 multiplier, shift, output zero point and clamp.
    #[inline(always)]
    pub fn new(bias: i32, multiplier: i32, shift: i8, zero_point: i8, min: i8, max: i8) -> Self {
        let e = (-(shift as i32)).clamp(2, 31) as u32;
        Self {
            bias,
            multiplier,
            shift,
            round: 1 << (e - 2),
            high_shift: e - 1,
            fast: shift <= -2 && multiplier != i32::MIN,
            zero_point: zero_point as i32,
            min: min as i32,
            max: max as i32,
        }
    }

    /// The same channel with its clamp narrowed to `[min, max]` as well (a later layer's
    /// clamp, fused); the caller makes sure the two ranges overlap.
    pub fn clamped(self, min: i8, max: i8) -> Self {
        Self {
            min: self.min.max(min as i32),
            max: self.max.min(max as i32),
            ..self
        }
    }

    /// The channel's bias, for accumulators that start from it.
    pub fn bias(&self) -> i32 {
        self.bias
    }

    /// `requantize(acc + bias, ...)`, bit for bit.
    #[inline(always)]
    pub fn apply(&self, acc: i32) -> i8 {
        self.apply_sum(acc.wrapping_add(self.bias))
    }

    /// Requantizes `sum`, an accumulator that already includes the bias.
    #[inline(always)]
    fn apply_sum(&self, sum: i32) -> i8 {
        let v = if self.fast {
            let p = sum as i64 * self.multiplier as i64 + (1 << 30);
            let (hi, lo) = ((p >> 32) as i32, p as i32);
            let borrow = (hi >> 31) & !(lo >> 31);
            hi.wrapping_add(self.round).wrapping_add(borrow) >> self.high_shift
        } else {
            multiply_by_quantized_multiplier(sum, self.multiplier, self.shift as i32)
        };
        (v + self.zero_point).clamp(self.min, self.max) as i8
    }

    /// `out[k · stride] = ` the requantized `sums[k]`, accumulators that already include the
    /// bias: one channel's outputs across the pixels of an HWC tensor. Out of line, so that
    /// the channel's constants stay in registers.
    #[inline(never)]
    pub fn apply_strided(&self, sums: &[i32], out: &mut [i8], stride: usize) {
        let n = sums.len().min(out.len().div_ceil(stride.max(1)));
        #[cfg(ember_thumb2)]
        if self.fast && n > 0 && stride > 0 {
            let out = &mut out[..(n - 1) * stride + 1];
            // SAFETY: reads `n` words of `sums` and writes `n` bytes of `out` `stride` apart,
            // the last at `(n - 1) · stride`, inside the slice taken above.
            unsafe { self.fast_strided(sums.as_ptr(), out.as_mut_ptr(), stride, n) };
            return;
        }
        for (&s, o) in sums[..n].iter().zip(out.iter_mut().step_by(stride)) {
            *o = self.apply_sum(s);
        }
    }

    /// The fast expression of [`apply_sum`](Self::apply_sum) over `n > 0` sums, in Thumb-2
    /// assembly with every constant in a register: 19 instructions per output, or 14 when
    /// the clamp is the whole int8 range (one SSAT).
    ///
    /// # Safety
    /// `sums` must be readable for `n` words and `out` writable at `k · stride` for `k < n`.
    #[cfg(ember_thumb2)]
    #[inline(always)]
    unsafe fn fast_strided(&self, sums: *const i32, out: *mut i8, stride: usize, n: usize) {
        macro_rules! strided {
            ($($clamp:literal),* ; $($operands:tt)*) => {
                // SAFETY: the caller's contract; the loop touches nothing else, and only the
                // flags and the named registers.
                unsafe {
                    core::arch::asm!(
                        "2:",
                        "ldr {lo}, [{sums}], #4",
                        "smull {lo}, {hi}, {lo}, {m}",
                        "adds {lo}, {lo}, #0x40000000",
                        "adc {hi}, {hi}, #0",
                        // hi(S) = hi(P') + 2^(e-2) - [P' < 0 and bit 31 of lo(P') clear]
                        "bic {lo}, {hi}, {lo}",
                        "add {hi}, {hi}, {round}",
                        "add {hi}, {hi}, {lo}, asr #31",
                        "asr {hi}, {hi}, {shift}",
                        "add {hi}, {hi}, {zp}",
                        $($clamp,)*
                        "strb {hi}, [{out}]",
                        "add {out}, {out}, {stride}",
                        "subs {n}, {n}, #1",
                        "bne 2b",
                        sums = inout(reg) sums => _,
                        out = inout(reg) out => _,
                        n = inout(reg) n => _,
                        stride = in(reg) stride,
                        m = in(reg) self.multiplier,
                        round = in(reg) self.round,
                        shift = in(reg) self.high_shift,
                        zp = in(reg) self.zero_point,
                        lo = out(reg) _,
                        hi = out(reg) _,
                        $($operands)*
                        options(nostack),
                    );
                }
            };
        }
        if (self.min, self.max) == (i8::MIN as i32, i8::MAX as i32) {
            strided!("ssat {hi}, #8, {hi}";);
        } else {
            strided!(
                "cmp {hi}, {min}",
                "it lt",
                "movlt {hi}, {min}",
                "cmp {hi}, {max}",
                "it gt",
                "movgt {hi}, {max}";
                min = in(reg) self.min,
                max = in(reg) self.max,
            );
        }
    }
}

/// Splits a real multiplier into a Q31 multiplier and a power-of-two shift, as TFLite's
/// `QuantizeMultiplier` does (`real ≈ multiplier · 2^shift / 2^31`). Host-side only: the
/// quantizer calls it, the device never sees a float multiplier.
pub fn quantize_multiplier(real: f64) -> (i32, i32) {
    if real <= 0.0 || !real.is_finite() {
        return (0, 0);
    }
    let (q, mut shift) = frexp(real);
    let mut q_fixed = round_half_away(q * (1i64 << 31) as f64) as i64;
    if q_fixed == 1i64 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    if shift < -31 {
        return (0, 0);
    }
    if shift > 30 {
        return (i32::MAX, 30);
    }
    (q_fixed as i32, shift)
}

/// `x = m · 2^e` with `0.5 <= |m| < 1`.
fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 {
        return (0.0, 0);
    }
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // Subnormal: scale into the normal range first.
        let (m, e) = frexp(x * (1u64 << 54) as f64);
        return (m, e - 54);
    }
    let e = exp - 1022;
    let m = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (m, e)
}

/// Round half away from zero without `std`.
fn round_half_away(x: f64) -> f64 {
    let t = x as i64 as f64;
    let frac = x - t;
    if frac >= 0.5 {
        t + 1.0
    } else if frac <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TFLite reference, transcribed literally with i64 arithmetic for comparison.
    fn reference(acc: i32, m: i32, shift: i32) -> i32 {
        let left = if shift > 0 { shift } else { 0 };
        let right = if shift > 0 { 0 } else { -shift };
        let a = (acc as i64 * (1i64 << left)).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        let high = if a == i32::MIN && m == i32::MIN {
            i32::MAX
        } else {
            let ab = a as i64 * m as i64;
            let nudge = if ab >= 0 {
                1i64 << 30
            } else {
                1 - (1i64 << 30)
            };
            ((ab + nudge) / (1i64 << 31)) as i32
        };
        let mask = ((1i64 << right) - 1) as i32;
        let rem = high & mask;
        let threshold = (mask >> 1) + if high < 0 { 1 } else { 0 };
        (high >> right) + if rem > threshold { 1 } else { 0 }
    }

    #[test]
    fn saturates_at_i32_min_times_i32_min() {
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MAX),
            -i32::MAX
        );
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, i32::MIN, 0),
            i32::MAX
        );
    }

    #[test]
    fn exact_halves_round_away_from_zero() {
        // A 0.5 multiplier puts odd inputs exactly on a half. gemmlowp's high mul rounds a
        // positive half up and, through its nudge of 1 - 2^30, a negative half toward zero;
        // TFLite inherits exactly that, so the device must too.
        let half = 1 << 30;
        assert_eq!(multiply_by_quantized_multiplier(3, half, 0), 2);
        assert_eq!(multiply_by_quantized_multiplier(-3, half, 0), -1);
        assert_eq!(multiply_by_quantized_multiplier(5, half, 0), 3);
        assert_eq!(multiply_by_quantized_multiplier(-5, half, 0), -2);
        // With the half produced by the shift instead, ties go away from zero.
        assert_eq!(multiply_by_quantized_multiplier(-3, i32::MAX, -1), -2);
        assert_eq!(multiply_by_quantized_multiplier(3, i32::MAX, -1), 2);
        assert_eq!(rounding_divide_by_pot(-6, 2), -2); // -1.5 → -2
        assert_eq!(rounding_divide_by_pot(6, 2), 2); // 1.5 → 2
        assert_eq!(rounding_divide_by_pot(-5, 2), -1); // -1.25 → -1
    }

    #[test]
    fn shifts_of_zero_and_thirty_one() {
        assert_eq!(rounding_divide_by_pot(12345, 0), 12345);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(1 << 30, 31), 1); // exactly 0.5 → 1
        assert_eq!(rounding_divide_by_pot(-(1 << 30), 31), -1); // exactly -0.5 → -1
        assert_eq!(multiply_by_quantized_multiplier(1000, i32::MAX, -31), 0);
        assert_eq!(
            multiply_by_quantized_multiplier(1 << 20, 1 << 30, 10),
            1 << 29
        );
    }

    #[test]
    fn matches_the_reference_on_a_sweep() {
        let mut x: u32 = 12345;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..200_000 {
            let acc = next() as i32;
            // Every multiplier, negative ones included, though the quantizer makes none.
            let m = next() as i32;
            let shift = (next() % 39) as i32 - 31;
            assert_eq!(
                multiply_by_quantized_multiplier(acc, m, shift),
                reference(acc, m, shift),
                "{acc} {m} {shift}"
            );
        }
    }

    #[test]
    fn channel_requant_equals_the_definition() {
        let mut x: u32 = 777;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..200_000 {
            let (acc, bias, m) = (
                next() as i32 >> (next() % 24),
                next() as i32 >> 8,
                next() as i32,
            );
            let shift = (next() % 40) as i8 - 32;
            let (zp, a, b) = (next() as i8, next() as i8, next() as i8);
            let (min, max) = (a.min(b), a.max(b));
            let want = requantize(acc.wrapping_add(bias), m, shift, zp, min, max);
            let got = ChannelRequant::new(bias, m, shift, zp, min, max).apply(acc);
            assert_eq!(got, want, "{acc} {bias} {m} {shift} {zp} {min} {max}");
        }
        let edge = ChannelRequant::new(0, i32::MIN, 0, 0, -128, 127);
        assert_eq!(
            edge.apply(i32::MIN),
            requantize(i32::MIN, i32::MIN, 0, 0, -128, 127)
        );
    }

    #[test]
    fn quantized_multipliers_reproduce_the_real_value() {
        for real in [
            0.000_123_4,
            0.003_9,
            0.25,
            0.5,
            0.75,
            0.999_999_9,
            1.0,
            3.7,
            1e-9,
        ] {
            let (m, shift) = quantize_multiplier(real);
            let back = m as f64 * 2f64.powi(shift) / 2f64.powi(31);
            assert!(
                (back - real).abs() <= real * 1e-9,
                "{real}: {m} {shift} -> {back}"
            );
            assert!(
                m >= 1 << 30 || m == 0,
                "{real}: multiplier {m} not normalized"
            );
        }
        for acc in [-100_000, -7, 0, 7, 100_000] {
            let (m, shift) = quantize_multiplier(0.0123);
            let got = multiply_by_quantized_multiplier(acc, m, shift);
            assert!(
                (got as f64 - acc as f64 * 0.0123).abs() <= 0.5 + 1e-6,
                "{acc}: {got}"
            );
        }
    }
}
