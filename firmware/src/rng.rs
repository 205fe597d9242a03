//! A small deterministic generator (xorshift64) for the randomized checks: the host's property
//! tests and the on-device kernel check draw their problems from it, the same on every core.

/// xorshift64; seed it with a non-zero value.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 32 bits.
    pub fn word(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 16) as u32
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.word() as usize % (hi - lo + 1)
    }

    /// Fills `bytes` with random values.
    pub fn fill(&mut self, bytes: &mut [i8]) {
        bytes.iter_mut().for_each(|b| *b = self.word() as i8);
    }
}
