//! The int8 kernels on HWC tensors. Callers (`model::run`) check every shape first, so the
//! kernels index freely; the inner loops run over zipped slices, which compile without bounds
//! checks.

mod conv;
mod fully_connected;
mod im2col;
mod pool;

pub use conv::{conv, conv_max_pool, fuses};
pub use fully_connected::fully_connected;
pub use pool::pool;

/// Largest `kh · kw · in_c` a convolution may have (its im2col block lives on the stack).
pub const MAX_TAPS: usize = 1152;

/// Output pixels a convolution computes together: each weight word loaded serves all of them.
const BLOCK: usize = 4;

#[cfg(test)]
mod tests;
