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

/// Largest `kh · kw · in_c` a convolution may have: a 3×3 kernel over 64 channels. Its
/// im2col tile (four pixels of this many taps as 16-bit pairs) lives on the stack, so this
/// bounds the firmware's RAM; `Model::validate` refuses a larger kernel.
pub const MAX_TAPS: usize = 576;

/// Output pixels a convolution computes together: each weight word loaded serves all of them.
const BLOCK: usize = 4;

#[cfg(test)]
mod tests;
