//! MNIST batches as burn tensors, and the seeded shuffle that orders them.

use burn::tensor::{Device, Int, Tensor, TensorData};
use mnist::{Dataset, PIXELS, SIDE};

/// Images `idx` of `ds` as `[N, 1, 28, 28]` with pixels scaled to [0, 1] (the model's input).
pub fn images(ds: &Dataset, idx: &[usize], device: &Device) -> Tensor<4> {
    let mut pixels = Vec::with_capacity(idx.len() * PIXELS);
    for &i in idx {
        pixels.extend(ds.image(i).iter().map(|&p| p as f32 / 255.0));
    }
    Tensor::from_data(TensorData::new(pixels, [idx.len(), 1, SIDE, SIDE]), device)
}

/// Labels `idx` of `ds` as an int tensor `[N]`.
pub fn labels(ds: &Dataset, idx: &[usize], device: &Device) -> Tensor<1, Int> {
    let labels: Vec<i64> = idx.iter().map(|&i| ds.label(i) as i64).collect();
    Tensor::from_data(TensorData::new(labels, [idx.len()]), device)
}

/// SplitMix64: a tiny, well-mixed generator, so the data order depends on the seed alone.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}
