//! The int8 model as the compiler holds it: layers that own their arrays, tensors with their
//! planned offsets, and the firmware's borrowed view of both.

use firmware::{Conv, ConvWeights, Edge, FullyConnected, Layer, Model};

use crate::graph::Act;

/// Per-tensor affine quantization: `real = (q - zero_point) · scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    /// Step between two codes.
    pub scale: f32,
    /// Code of real zero.
    pub zero_point: i8,
}

impl QParams {
    /// Parameters covering `[lo, hi]` (widened to include 0) with all 256 codes.
    pub fn from_range(lo: f32, hi: f32) -> Self {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let scale = ((hi - lo) / 255.0).max(1e-8);
        let zero_point = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i8;
        QParams { scale, zero_point }
    }

    pub(crate) fn code(&self, real: f32) -> i8 {
        (real / self.scale + self.zero_point as f32)
            .round()
            .clamp(-128.0, 127.0) as i8
    }

    pub(crate) fn clamp(&self, act: Act) -> (i8, i8) {
        let lo = if act.lo.is_finite() {
            self.code(act.lo)
        } else {
            -128
        };
        let hi = if act.hi.is_finite() {
            self.code(act.hi)
        } else {
            127
        };
        (lo, hi)
    }
}

/// A layer's arrays, owned (the firmware's layer types borrow them).
#[derive(Debug, Clone, Default)]
pub struct Params {
    /// int8 weights, in the firmware's plain order.
    pub weights: Vec<i8>,
    /// A convolution's weights in the im2col kernel's form ([`ConvWeights::Packed`]), where
    /// that kernel runs it; else empty.
    pub packed: Vec<u32>,
    /// int32 bias per output channel.
    pub bias: Vec<i32>,
    /// Q31 multipliers per output channel.
    pub multiplier: Vec<i32>,
    /// Shifts per output channel.
    pub shift: Vec<i8>,
    /// A Concat's inputs.
    pub parts: Vec<firmware::ConcatPart>,
}

/// An int8 layer that owns its arrays: the firmware's type with empty slices, and the arrays.
#[derive(Debug, Clone)]
pub struct QLayer {
    /// The layer, its slices empty.
    pub layer: Layer<'static>,
    /// Its arrays.
    pub params: Params,
    /// Tensors read.
    pub inputs: Vec<u16>,
    /// Runs inside the step of the layer before ([`firmware::Edge::fused`]).
    pub fused: bool,
    /// A name for reports.
    pub name: String,
}

impl QLayer {
    /// The firmware's view, borrowing the arrays.
    pub fn view(&self) -> Layer<'_> {
        let p = &self.params;
        match self.layer {
            Layer::Conv(c) => Layer::Conv(Conv {
                weights: match p.packed.is_empty() {
                    true => ConvWeights::Plain(&p.weights),
                    false => ConvWeights::Packed(&p.packed),
                },
                bias: &p.bias,
                multiplier: &p.multiplier,
                shift: &p.shift,
                ..c
            }),
            Layer::FullyConnected(f) => Layer::FullyConnected(FullyConnected {
                weights: &p.weights,
                bias: &p.bias,
                multiplier: &p.multiplier,
                shift: &p.shift,
                ..f
            }),
            Layer::Concat(c) => Layer::Concat(firmware::Concat {
                parts: &p.parts,
                ..c
            }),
            other => other,
        }
    }
}

/// A quantized model that owns its data; tensor `i + 1` is layer `i`'s output.
#[derive(Debug, Clone)]
pub struct QuantModel {
    /// Layers in order.
    pub layers: Vec<QLayer>,
    /// Every tensor, with its planned offset ([`firmware::plan::greedy`]).
    pub tensors: Vec<firmware::Tensor>,
    /// Added to an input byte to make its code (`-128`: a byte `b` is the code `b - 128`).
    pub input_zero_point: i8,
    /// Scale and zero point of the input tensor's codes.
    pub input: QParams,
    /// The input convention: a pixel `p` is worth `p·scale + offset`.
    pub pixel: (f32, f32),
    /// Scale of the logits.
    pub output_scale: f32,
    /// Zero point of the logits.
    pub output_zero_point: i8,
    /// Bytes of arena the plan needs.
    pub arena_bytes: usize,
}

/// The firmware's view of a [`QuantModel`]: its layers and edges, borrowed.
pub struct View<'q> {
    layers: Vec<Layer<'q>>,
    edges: Vec<Edge<'q>>,
    q: &'q QuantModel,
}

impl View<'_> {
    /// The firmware model.
    pub fn model(&self) -> Model<'_> {
        Model {
            layers: &self.layers,
            edges: &self.edges,
            tensors: &self.q.tensors,
            input_zero_point: self.q.input_zero_point,
            output_scale: self.q.output_scale,
            output_zero_point: self.q.output_zero_point,
            arena_bytes: self.q.arena_bytes,
        }
    }
}

impl QuantModel {
    /// The firmware's view, for [`View::model`].
    pub fn view(&self) -> View<'_> {
        View {
            layers: self.layers.iter().map(QLayer::view).collect(),
            edges: self
                .layers
                .iter()
                .enumerate()
                .map(|(i, l)| Edge {
                    inputs: &l.inputs,
                    output: i as u16 + 1,
                    fused: l.fused,
                })
                .collect(),
            q: self,
        }
    }

    /// Layer names, for reports.
    pub fn names(&self) -> Vec<&str> {
        self.layers.iter().map(|l| l.name.as_str()).collect()
    }

    /// Bytes of weights, biases, multipliers and shifts (what goes to flash).
    pub fn weight_bytes(&self) -> usize {
        self.layers.iter().map(|l| l.view().weight_bytes()).sum()
    }

    /// Bytes of every activation tensor together: what an arena without a plan would take.
    pub fn activation_bytes(&self) -> usize {
        self.tensors.iter().map(|t| t.shape.len()).sum()
    }

    /// Fuses every max pool that may run inside the convolution before it
    /// ([`Model::may_fuse`]): the pool is then written during the convolution's step, and the
    /// convolution's full output needs no room in the arena.
    pub(crate) fn fuse_pools(&mut self) {
        let view = self.view();
        let model = view.model();
        let fusable: Vec<bool> = (0..self.layers.len()).map(|i| model.may_fuse(i)).collect();
        drop(view);
        for (layer, fuse) in self.layers.iter_mut().zip(fusable) {
            layer.fused = fuse;
        }
    }

    /// Gives every tensor its offset in one arena ([`firmware::plan::greedy`]).
    pub(crate) fn plan(&mut self) {
        let view = self.view();
        let mut offsets = vec![0u32; self.tensors.len()];
        let arena = firmware::plan::greedy(&view.model(), &mut offsets);
        drop(view);
        for (t, o) in self.tensors.iter_mut().zip(offsets) {
            t.offset = o;
        }
        self.arena_bytes = arena;
    }
}
