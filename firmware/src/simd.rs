//! Word-level SIMD primitives of ARMv7E-M's DSP extension, each with a portable twin.
//!
//! The kernels are written once against these functions. On a Cortex-M4/M7 (`ember_dsp`, set by
//! build.rs) each is one instruction; elsewhere (the M3, the host simulation) the portable twin
//! computes the same bits, which the tests below pin lane by lane.

/// Little-endian word from the first four bytes of `bytes`.
#[inline(always)]
pub fn word(bytes: &[i8]) -> u32 {
    u32::from_le_bytes([
        bytes[0] as u8,
        bytes[1] as u8,
        bytes[2] as u8,
        bytes[3] as u8,
    ])
}

/// Word from two signed halfwords, `lo` in bits 0..16.
#[inline(always)]
pub fn pack16(lo: i32, hi: i32) -> u32 {
    (lo as u16 as u32) | ((hi as u16 as u32) << 16)
}

/// Bytes 0 and 2 of `x`, sign-extended into the two halfwords (SXTB16).
#[cfg(ember_dsp)]
#[inline(always)]
pub fn sxtb16(x: u32) -> u32 {
    let r;
    // SAFETY: register-only DSP instruction, present on every ARMv7E-M core.
    unsafe {
        core::arch::asm!("sxtb16 {r}, {x}", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// Bytes 1 and 3 of `x`, sign-extended into the two halfwords (SXTB16 with ROR #8).
#[cfg(ember_dsp)]
#[inline(always)]
pub fn sxtb16_ror8(x: u32) -> u32 {
    let r;
    // SAFETY: as for `sxtb16`.
    unsafe {
        core::arch::asm!("sxtb16 {r}, {x}, ror #8", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// Lane-wise wrapping sum of two halfword pairs (SADD16; its GE flags are not used).
#[cfg(ember_dsp)]
#[inline(always)]
pub fn sadd16(a: u32, b: u32) -> u32 {
    let r;
    // SAFETY: register-only; SADD16 writes only the APSR.GE bits, which Rust never reads.
    unsafe {
        core::arch::asm!("sadd16 {r}, {a}, {b}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, options(pure, nomem, nostack))
    };
    r
}

/// `acc + a.lo·b.lo + a.hi·b.hi` over signed halfwords (SMLAD).
#[cfg(ember_dsp)]
#[inline(always)]
pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let mut acc = acc;
    // SAFETY: register-only. SMLAD sets Q on overflow, which nothing reads; accumulators here
    // stay far inside i32 (validated layer sizes), so the sum is exact.
    unsafe {
        core::arch::asm!(
            "smlad {acc}, {a}, {b}, {acc}",
            a = in(reg) a,
            b = in(reg) b,
            acc = inout(reg) acc,
            options(pure, nomem, nostack),
        )
    };
    acc
}

/// Lane-wise signed maximum of four bytes (SSUB8 sets GE per lane, SEL picks by it).
#[cfg(ember_dsp)]
#[inline(always)]
pub fn max8x4(a: u32, b: u32) -> u32 {
    let r;
    // SAFETY: register-only; the GE flags SSUB8 writes are consumed by SEL inside this block.
    unsafe {
        core::arch::asm!(
            "ssub8 {t}, {a}, {b}",
            "sel {r}, {a}, {b}",
            r = out(reg) r,
            t = out(reg) _,
            a = in(reg) a,
            b = in(reg) b,
            options(pure, nomem, nostack),
        )
    };
    r
}

/// Signed halfword `i` (0 = low) of `x`.
#[cfg(any(test, not(ember_dsp)))]
#[inline(always)]
fn half(x: u32, i: u32) -> i32 {
    (x >> (16 * i)) as u16 as i16 as i32
}

/// Signed byte `i` (0 = lowest) of `x`.
#[cfg(any(test, not(ember_dsp)))]
#[inline(always)]
fn byte(x: u32, i: u32) -> i32 {
    (x >> (8 * i)) as u8 as i8 as i32
}

/// Portable SXTB16.
#[cfg(not(ember_dsp))]
#[inline(always)]
pub fn sxtb16(x: u32) -> u32 {
    pack16(byte(x, 0), byte(x, 2))
}

/// Portable SXTB16 with ROR #8.
#[cfg(not(ember_dsp))]
#[inline(always)]
pub fn sxtb16_ror8(x: u32) -> u32 {
    pack16(byte(x, 1), byte(x, 3))
}

/// Portable SADD16.
#[cfg(not(ember_dsp))]
#[inline(always)]
pub fn sadd16(a: u32, b: u32) -> u32 {
    pack16(half(a, 0) + half(b, 0), half(a, 1) + half(b, 1))
}

/// Portable SMLAD (exact while the sum fits, as the kernels guarantee).
#[cfg(not(ember_dsp))]
#[inline(always)]
pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    acc.wrapping_add(half(a, 0) * half(b, 0))
        .wrapping_add(half(a, 1) * half(b, 1))
}

/// Portable lane-wise signed byte maximum.
#[cfg(not(ember_dsp))]
#[inline(always)]
pub fn max8x4(a: u32, b: u32) -> u32 {
    let lane = |i| (byte(a, i).max(byte(b, i)) as u8 as u32) << (8 * i);
    lane(0) | lane(1) | lane(2) | lane(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words() -> impl Iterator<Item = u32> {
        let mut x: u32 = 0x9e37_79b9;
        let edges = [
            0,
            u32::MAX,
            0x8080_8080,
            0x7f7f_7f7f,
            0x8000_7fff,
            0x0001_ffff,
        ];
        edges.into_iter().chain(core::iter::from_fn(move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            Some(x)
        }))
    }

    #[test]
    fn lanes_follow_the_instruction_definitions() {
        for (a, b) in words().zip(words().skip(7)).take(50_000) {
            assert_eq!(half(sxtb16(a), 0), byte(a, 0));
            assert_eq!(half(sxtb16(a), 1), byte(a, 2));
            assert_eq!(half(sxtb16_ror8(a), 0), byte(a, 1));
            assert_eq!(half(sxtb16_ror8(a), 1), byte(a, 3));
            let sum = sadd16(a, b);
            assert_eq!(half(sum, 0), (half(a, 0) + half(b, 0)) as i16 as i32);
            assert_eq!(half(sum, 1), (half(a, 1) + half(b, 1)) as i16 as i32);
            let acc = (b >> 3) as i32 - (1 << 28);
            let want =
                acc as i64 + (half(a, 0) * half(b, 0)) as i64 + (half(a, 1) * half(b, 1)) as i64;
            assert_eq!(smlad(a, b, acc) as i64, want);
            let m = max8x4(a, b);
            for i in 0..4 {
                assert_eq!(byte(m, i), byte(a, i).max(byte(b, i)));
            }
        }
    }

    #[test]
    fn words_are_little_endian() {
        assert_eq!(word(&[1, -1, 0, -128]), 0x8000_ff01);
        assert_eq!(pack16(-1, 2), 0x0002_ffff);
    }
}
