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

pub use mnist::SplitMix;
