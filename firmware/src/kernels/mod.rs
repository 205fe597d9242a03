//! The int8 kernels on HWC tensors. Callers (`model::run`) check every shape first, so the
//! kernels index freely; the inner loops run over zipped slices, which compile without bounds
//! checks.

mod conv;
mod depthwise;
mod fully_connected;
mod im2col;
mod merge;
mod pool;
pub mod reference;

pub use conv::{conv_max_pool, fuses};
pub use fully_connected::fully_connected;
pub use merge::{add, concat};
pub use pool::pool;

use crate::model::Conv;

/// Most inputs a Concat may have.
pub const MAX_PARTS: usize = 8;

/// Convolution of any kind: the im2col kernel for a plain one, the depthwise kernel, or the
/// reference loops for what neither takes (other groups, dilation, very long filters).
pub fn conv(layer: &Conv, input: &[i8], output: &mut [i8]) {
    if conv::takes(layer) {
        conv::conv(layer, input, output)
    } else if layer.is_depthwise() && layer.dilation == (1, 1) {
        depthwise::depthwise(layer, input, output)
    } else {
        reference::conv(layer, input, output)
    }
}

/// Largest `kh · kw · in_c` a convolution may have: a 3×3 kernel over 64 channels. Its
/// im2col tile (four pixels of this many taps as 16-bit pairs) lives on the stack, so this
/// bounds the firmware's RAM; `Model::validate` refuses a larger kernel.
pub const MAX_TAPS: usize = 576;

/// Output pixels a convolution computes together: each weight word loaded serves all of them.
const BLOCK: usize = 4;

#[cfg(test)]
mod branch_tests;
#[cfg(test)]
mod tests;
