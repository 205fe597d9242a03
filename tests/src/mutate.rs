//! Seeded mutations of real files, as an attacker or a broken disk would make them: bit flips,
//! truncations, spliced runs, and length or dimension fields set to 0, 2^31 or all ones.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The kinds of damage, one per case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// 1 to 8 random bits flipped.
    Flip,
    /// Cut at a random length.
    Truncate,
    /// A run of the file copied over another place in it.
    Splice,
    /// Four bytes at a random place set to 0, 2^31 (either byte order) or all ones.
    HugeField,
    /// A protobuf-style varint written over a random place: 0, 2^31 or 2^63.
    HugeVarint,
}

/// Every kind, in the order cases cycle through them.
pub const ALL: [Damage; 5] = [
    Damage::Flip,
    Damage::Truncate,
    Damage::Splice,
    Damage::HugeField,
    Damage::HugeVarint,
];

/// Case `case` of the mutations of `seed` (deterministic): the damage done and the bytes.
pub fn mutate(seed: &[u8], case: u64) -> (Damage, Vec<u8>) {
    let mut rng =
        StdRng::seed_from_u64(case.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed.len() as u64);
    let damage = ALL[(case % ALL.len() as u64) as usize];
    let mut bytes = seed.to_vec();
    if bytes.is_empty() {
        return (damage, bytes);
    }
    let at = |rng: &mut StdRng, len: usize| rng.random_range(0..len);
    match damage {
        Damage::Flip => {
            for _ in 0..rng.random_range(1..=8) {
                let i = at(&mut rng, bytes.len());
                bytes[i] ^= 1 << rng.random_range(0..8);
            }
        }
        Damage::Truncate => bytes.truncate(at(&mut rng, bytes.len())),
        Damage::Splice => {
            let (from, to) = (at(&mut rng, bytes.len()), at(&mut rng, bytes.len()));
            let len = rng
                .random_range(1..=64)
                .min(bytes.len() - from)
                .min(bytes.len() - to);
            let run = bytes[from..from + len].to_vec();
            bytes[to..to + len].copy_from_slice(&run);
        }
        Damage::HugeField => {
            let values: [[u8; 4]; 4] = [[0; 4], [0x80, 0, 0, 0], [0, 0, 0, 0x80], [0xff; 4]];
            let value = values[rng.random_range(0..values.len())];
            let i = at(&mut rng, bytes.len().saturating_sub(3).max(1));
            for (k, b) in value.iter().enumerate() {
                if let Some(slot) = bytes.get_mut(i + k) {
                    *slot = *b;
                }
            }
        }
        Damage::HugeVarint => {
            let values: [&[u8]; 3] = [
                &[0x00],
                &[0x80, 0x80, 0x80, 0x80, 0x08],
                &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
            ];
            let value = values[rng.random_range(0..values.len())];
            let i = at(&mut rng, bytes.len());
            for (k, b) in value.iter().enumerate() {
                if let Some(slot) = bytes.get_mut(i + k) {
                    *slot = *b;
                }
            }
        }
    }
    (damage, bytes)
}
