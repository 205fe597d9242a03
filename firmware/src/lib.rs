//! Ember's int8 inference engine, one implementation for the host and the microcontroller.
//!
//! The arithmetic follows TensorFlow Lite Micro's reference kernels: int8 weights symmetric per
//! output channel, int8 activations per tensor with a zero point, int32 bias at scale
//! `s_in·s_w`, requantization by a Q31 multiplier and a shift with gemmlowp's rounding, ReLU
//! fused as a clamp. Activations are laid out HWC. No heap, no floats except in the final
//! dequantization of the ten logits, and no panics: every shape is checked before the first
//! kernel runs.
#![cfg_attr(not(test), no_std)]

#[cfg(target_os = "none")]
pub mod board;
#[cfg(target_os = "none")]
pub mod console;
pub mod file;
pub mod kernels;
pub mod layers;
pub mod model;
pub mod plan;
pub mod protocol;
pub mod requant;
pub mod rng;
pub mod simd;
#[cfg(target_os = "none")]
pub mod stored;

pub use model::{
    run, Add, Checked, Concat, ConcatPart, Conv, ConvWeights, Edge, Error, FullyConnected, Layer,
    Model, Output, Pool, PoolKind, Rescale, Shape, Tensor,
};
