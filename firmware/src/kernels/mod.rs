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

use crate::model::{Conv, Layer};

/// Most inputs a Concat may have.
pub const MAX_PARTS: usize = 8;

/// Which kernel runs a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvKernel {
    /// The im2col kernel: packed weights (one group, no dilation, at most `MAX_TAPS` taps).
    Im2col,
    /// The depthwise kernel (no dilation).
    Depthwise,
    /// The reference loops: anything else.
    Reference,
}

/// The kernel that runs `layer`.
pub fn conv_kernel(layer: &Conv) -> ConvKernel {
    if conv::takes(layer) {
        ConvKernel::Im2col
    } else if layer.is_depthwise() && layer.dilation == (1, 1) {
        ConvKernel::Depthwise
    } else {
        ConvKernel::Reference
    }
}

/// Which kernels a firmware links. A generated model names the ones its layers use, and the
/// binaries run it with that list, so the others' code is left out of flash. The im2col
/// convolution, pooling and fully connected kernels are always in.
pub trait Kernels {
    /// The reference convolution (grouped, dilated, very long filters).
    const REFERENCE_CONV: bool;
    /// The depthwise convolution.
    const DEPTHWISE: bool;
    /// Add.
    const ADD: bool;
    /// Concat.
    const CONCAT: bool;

    /// Whether `layer` can run with these kernels.
    fn links(layer: &Layer) -> bool {
        match layer {
            Layer::Conv(c) => match conv_kernel(c) {
                ConvKernel::Im2col => true,
                ConvKernel::Depthwise => Self::DEPTHWISE,
                ConvKernel::Reference => Self::REFERENCE_CONV,
            },
            Layer::Add(_) => Self::ADD,
            Layer::Concat(_) => Self::CONCAT,
            Layer::Pool(_) | Layer::FullyConnected(_) => true,
        }
    }
}

/// Every kernel: the host's choice.
pub struct All;

impl Kernels for All {
    const REFERENCE_CONV: bool = true;
    const DEPTHWISE: bool = true;
    const ADD: bool = true;
    const CONCAT: bool = true;
}

/// Convolution of any kind: the im2col kernel for a plain one, the depthwise kernel, or the
/// reference loops for what neither takes (other groups, dilation, very long filters).
pub fn conv(layer: &Conv, input: &[i8], output: &mut [i8]) {
    conv_linked::<All>(layer, input, output)
}

/// [`conv`] with only the kernels `K` links (the caller checked [`Kernels::links`]).
pub fn conv_linked<K: Kernels>(layer: &Conv, input: &[i8], output: &mut [i8]) {
    match conv_kernel(layer) {
        ConvKernel::Im2col => conv::conv(layer, input, output),
        ConvKernel::Depthwise if K::DEPTHWISE => depthwise::depthwise(layer, input, output),
        ConvKernel::Reference if K::REFERENCE_CONV => reference::conv(layer, input, output),
        _ => {}
    }
}

/// Largest `kh · kw · in_c` a convolution may have: a 3×3 kernel over 64 channels. Its
/// im2col tile (four pixels of this many taps as 16-bit pairs) lives on the stack, so this
/// bounds the firmware's RAM; `Model::validate` refuses a larger kernel.
pub const MAX_TAPS: usize = 576;

/// Whether this is an ARMv6-M core (the Cortex-M0), whose 16 KiB of RAM hold the inference
/// service's frames besides the stack: the convolution's stack buffers are smaller there.
const SMALL_RAM: bool = cfg!(all(target_arch = "arm", not(ember_thumb2)));

/// Output pixels a convolution computes together: each weight word loaded serves all of them.
const BLOCK: usize = 4;

/// Runs `f` on `layer` (plain weights) as the compiler hands it to the kernels: packed where
/// the im2col kernel takes it.
#[cfg(test)]
fn compiled<R>(layer: &Conv, f: impl FnOnce(&Conv) -> R) -> R {
    match layer.weights {
        crate::model::ConvWeights::Plain(plain) if layer.im2col_fits() => {
            let mut words = std::vec![0u32; layer.packed_words()];
            layer.pack(plain, &mut words);
            f(&Conv {
                weights: crate::model::ConvWeights::Packed(&words),
                ..*layer
            })
        }
        _ => f(layer),
    }
}

#[cfg(test)]
mod branch_tests;
#[cfg(test)]
mod tests;
