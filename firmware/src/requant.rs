//! Fixed-point requantization, bit-for-bit as gemmlowp and TensorFlow Lite compute it.

/// `round(a · b / 2^31)` with ties away from zero, saturating the one overflowing case
/// (`i32::MIN · i32::MIN`). gemmlowp's `SaturatingRoundingDoublingHighMul`.
#[inline(always)]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // Division truncates toward zero, as in the C++ reference.
    ((ab + nudge) / (1i64 << 31)) as i32
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
    let left = shift.clamp(0, 31) as u32;
    let right = (-shift).clamp(0, 31) as u32;
    let scaled = acc.saturating_mul(1i32 << left);
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(scaled, multiplier),
        right,
    )
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
            let m = (next() | 0x4000_0000) as i32 & i32::MAX;
            let shift = (next() % 39) as i32 - 31;
            assert_eq!(
                multiply_by_quantized_multiplier(acc, m, shift),
                reference(acc, m, shift),
                "{acc} {m} {shift}"
            );
        }
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
