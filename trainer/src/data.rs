//! MNIST batches as burn tensors, and the seeded shuffle that orders them.

use burn::tensor::{Device, Int, Tensor, TensorData};
use mnist::{Dataset, PIXELS, SIDE};

/// Images `idx` of `ds` as `[N, 1, 28, 28]` with pixels scaled to [0, 1] (the model's input).
pub fn images(ds: &Dataset, idx: &[usize], device: &Device) -> Tensor<4> {
    batch(idx.iter().map(|&i| ds.image(i)), idx.len(), device)
}

/// Images `idx` of `ds` like [`images`], each augmented afresh for `epoch` (see
/// [`crate::augment`]); the same seed and epoch give the same pictures.
pub fn augmented_images(
    ds: &Dataset,
    idx: &[usize],
    seed: u64,
    epoch: usize,
    device: &Device,
) -> Tensor<4> {
    let augmented = idx.iter().map(|&i| {
        let image_seed =
            seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((epoch as u64) << 40) ^ i as u64;
        crate::augment::augment(ds.image(i), image_seed)
    });
    batch(augmented, idx.len(), device)
}

/// `n` 28×28 digits as `[n, 1, 28, 28]` with pixels scaled to [0, 1].
fn batch<I: AsRef<[u8]>>(digits: impl Iterator<Item = I>, n: usize, device: &Device) -> Tensor<4> {
    let mut pixels = Vec::with_capacity(n * PIXELS);
    for digit in digits {
        pixels.extend(digit.as_ref().iter().map(|&p| p as f32 / 255.0));
    }
    Tensor::from_data(TensorData::new(pixels, [n, 1, SIDE, SIDE]), device)
}

/// Labels `idx` of `ds` as an int tensor `[N]`.
pub fn labels(ds: &Dataset, idx: &[usize], device: &Device) -> Tensor<1, Int> {
    let labels: Vec<i64> = idx.iter().map(|&i| ds.label(i) as i64).collect();
    Tensor::from_data(TensorData::new(labels, [idx.len()]), device)
}

pub use mnist::SplitMix;
