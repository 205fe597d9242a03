//! Ember's int8 compiler: an ONNX graph read into a float IR ([`graph`], whose op registry is
//! [`graph::OPS`]), quantized with ranges a caller's [`Calibrate`] measures ([`quantize`]),
//! pooled into its convolutions and planned into one arena ([`QuantModel`]), and written as the
//! model file ([`write`]) that `firmware::file` reads on the host and on every core.
//!
//! It knows nothing of tract, MNIST or the CLI: the caller brings the ONNX bytes, the input
//! convention and the calibration.

mod error;
pub mod graph;
mod ir;
mod lower;
pub mod pb;
pub mod write;

pub use error::{Node, QuantizeError};
pub use ir::{Params, QLayer, QParams, QuantModel, View};
pub use write::{write, ModelBytes, Provenance};

use prost::Message;

/// The input convention: a pixel `p` in 0..255 is fed to the float model as
/// `p · pixel_scale + pixel_offset`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Input {
    /// Multiplies the pixel.
    pub pixel_scale: f32,
    /// Added after.
    pub pixel_offset: f32,
}

/// Measures the float model's activations: the caller runs the float graph (tract, in
/// `runtime`) on data it chooses and reports each named tensor's range.
pub trait Calibrate {
    /// The minimum and maximum of each ONNX tensor in `tensors`, in that order, over the
    /// calibration data.
    fn ranges(&mut self, tensors: &[&str]) -> Result<Vec<(f32, f32)>, String>;
}

/// An ONNX file, decoded.
pub fn decode(onnx: &[u8]) -> Result<pb::ModelProto, QuantizeError> {
    pb::ModelProto::decode(onnx)
        .map_err(|e| QuantizeError::Graph(format!("not an ONNX model: {e}")))
}

/// The model's graph as the compiler reads it: the float IR, or why it is refused (naming the
/// node and operator).
pub fn read(model: &pb::ModelProto) -> Result<graph::FloatGraph, QuantizeError> {
    let graph = model.graph.as_ref().ok_or("no graph")?;
    let input = graph
        .input
        .iter()
        .find(|i| !graph.initializer.iter().any(|t| t.name == i.name))
        .ok_or("no input")?;
    graph::read(graph, &input.name)
}

/// Quantizes `graph` for `input`, calibrating through `calib`: the int8 model, fused and
/// planned. A panic here is a compiler bug; callers that take hostile files contain it.
pub fn quantize(
    graph: &graph::FloatGraph,
    input: Input,
    calib: &mut dyn Calibrate,
) -> Result<QuantModel, QuantizeError> {
    lower::quantize(graph, input, calib)
}
