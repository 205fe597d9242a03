//! `runtime quantize`: an ONNX CNN compiled to Ember's int8 firmware model.
//!
//! The scheme is TensorFlow Lite's (see the `firmware` crate): ranges of activations are
//! calibrated through the float graph in tract on training images, weights are quantized
//! symmetric per output channel, biases to int32, and each layer gets Q31 multipliers.

pub mod codegen;
mod error;
pub mod graph;

pub use error::{Node, QuantizeError};

use firmware::requant::quantize_multiplier;
use firmware::{Conv, Edge, FullyConnected, Layer, Model, Pool, PoolKind, Shape};
use mnist::{Dataset, PIXELS};
use std::collections::HashMap;

use tract_onnx::prelude::*;

use crate::classifier::{one_line, Classifier};
use graph::{Act, FloatOp};

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

    fn code(&self, real: f32) -> i8 {
        (real / self.scale + self.zero_point as f32)
            .round()
            .clamp(-128.0, 127.0) as i8
    }

    fn clamp(&self, act: Act) -> (i8, i8) {
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
    /// int8 weights, in the firmware's order.
    pub weights: Vec<i8>,
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
                weights: &p.weights,
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
    /// Zero point of the input pixels.
    pub input_zero_point: i8,
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
    fn fuse_pools(&mut self) {
        let view = self.view();
        let model = view.model();
        let fusable: Vec<bool> = (0..self.layers.len()).map(|i| model.may_fuse(i)).collect();
        drop(view);
        for (layer, fuse) in self.layers.iter_mut().zip(fusable) {
            layer.fused = fuse;
        }
    }

    /// Gives every tensor its offset in one arena ([`firmware::plan::greedy`]).
    fn plan(&mut self) {
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

/// Runs the int8 model on every image of `ds` through the firmware kernels; returns the int8
/// logits, 10 per image.
pub fn simulate(q: &QuantModel, ds: &Dataset) -> Result<Vec<[i8; 10]>, firmware::Error> {
    let view = q.view();
    let model = view.model();
    let mut arena = vec![0i8; model.arena_bytes];
    (0..ds.len())
        .map(|i| firmware::run(&model, ds.image(i), &mut arena).map(|o| o.logits))
        .collect()
}

/// The classifier's graph read as the int8 compiler reads it.
fn read_graph(c: &Classifier) -> Result<graph::FloatGraph, QuantizeError> {
    let graph = c.proto.graph.as_ref().ok_or("no graph")?;
    let input_name = graph
        .input
        .iter()
        .find(|i| !graph.initializer.iter().any(|t| t.name == i.name))
        .ok_or("no input")?;
    graph::read(graph, &input_name.name)
}

/// Why the int8 compiler refuses the classifier (naming the node and operator), if it does.
pub fn refusal(c: &Classifier) -> Option<QuantizeError> {
    crate::contain::contain(|| read_graph(c))
        .map_err(QuantizeError::Internal)
        .and_then(|r| r)
        .err()
}

/// Quantizes the classifier's graph, calibrating on `calib` (training images).
pub fn quantize(c: &Classifier, calib: &Dataset) -> Result<QuantModel, QuantizeError> {
    crate::contain::contain(|| quantize_uncontained(c, calib)).map_err(QuantizeError::Internal)?
}

/// A value of the float graph as the int8 model holds it.
#[derive(Debug, Clone, Copy)]
struct Value {
    /// The firmware tensor.
    tensor: u16,
    shape: Shape,
    q: QParams,
    /// For a vector flattened from a CHW tensor: that tensor's shape (the next dense layer's
    /// weights are permuted to the firmware's HWC order).
    chw: Option<Shape>,
}

fn quantize_uncontained(c: &Classifier, calib: &Dataset) -> Result<QuantModel, QuantizeError> {
    let graph = read_graph(c)?;
    let ranges = calibrate(c, &graph.nodes, calib)?;
    let input_zero_point = (-128.0 - c.input.offset / c.input.scale)
        .round()
        .clamp(-128.0, 127.0) as i8;
    let image = Shape { h: 28, w: 28, c: 1 };
    let mut values: Vec<Option<Value>> = vec![None; graph.nodes.len() + 1];
    values[0] = Some(Value {
        tensor: 0,
        shape: image,
        q: QParams {
            scale: c.input.scale,
            zero_point: input_zero_point,
        },
        chw: None,
    });
    let mut q = QuantModel {
        layers: Vec::new(),
        tensors: vec![firmware::Tensor {
            shape: image,
            offset: 0,
        }],
        // Codes are `pixel - 128`, every one of the 256 used; the pixel scaling and offset are
        // folded into the image value's zero point above.
        input_zero_point: -128,
        output_scale: 0.0,
        output_zero_point: 0,
        arena_bytes: 0,
    };
    for node in &graph.nodes {
        let inputs: Vec<Value> = node
            .inputs
            .iter()
            .map(|&v| {
                values
                    .get(v)
                    .copied()
                    .flatten()
                    .ok_or("a layer reads a value never written")
            })
            .collect::<Result<_, _>>()?;
        let range = ranges.get(&node.calibrate).copied();
        let out = lower(node, &inputs, range, q.tensors.len() as u16).map_err(|reason| {
            QuantizeError::Unsupported {
                node: node.node.clone(),
                reason,
            }
        })?;
        if let Some(layer) = out.layer {
            q.tensors.push(firmware::Tensor {
                shape: out.value.shape,
                offset: 0,
            });
            q.layers.push(layer);
        }
        if values.len() <= node.output {
            values.resize(node.output + 1, None);
        }
        values[node.output] = Some(out.value);
    }
    let last = values
        .get(graph.output)
        .copied()
        .flatten()
        .ok_or("the graph's output is not computed")?;
    if last.shape.len() != 10 {
        return Err(QuantizeError::NotTenScores(last.shape.len()));
    }
    if last.tensor as usize != q.layers.len() {
        return Err("the scores must be the last layer's output".into());
    }
    (q.output_scale, q.output_zero_point) = (last.q.scale, last.q.zero_point);
    q.fuse_pools();
    q.plan();
    Ok(q)
}

/// What one float node becomes: a layer (none for a flatten) and the value it writes.
struct Lowered {
    layer: Option<QLayer>,
    value: Value,
}

/// Quantizes one node reading `inputs`; `range` is its calibrated output range and `tensor`
/// the index its output gets.
fn lower(
    node: &graph::FloatNode,
    inputs: &[Value],
    range: Option<(f32, f32)>,
    tensor: u16,
) -> Result<Lowered, String> {
    let x = inputs[0];
    let out_q = |act: Act| -> Result<QParams, String> {
        let (lo, hi) = range.ok_or("missing calibration")?;
        Ok(QParams::from_range(lo.max(act.lo), hi.min(act.hi)))
    };
    let layer =
        |layer: Layer<'static>, params: Params, name: String, shape: Shape, q: QParams| Lowered {
            layer: Some(QLayer {
                layer,
                params,
                inputs: inputs.iter().map(|v| v.tensor).collect(),
                fused: false,
                name,
            }),
            value: Value {
                tensor,
                shape,
                q,
                chw: None,
            },
        };
    Ok(match &node.op {
        FloatOp::Conv { .. } => {
            let qout = out_q(conv_act(&node.op))?;
            let (conv, params, name) = lower_conv(&node.op, x, qout)?;
            layer(Layer::Conv(conv), params, name, conv.output, qout)
        }
        FloatOp::Pool { .. } => {
            let (pool, name) = lower_pool(&node.op, x)?;
            layer(Layer::Pool(pool), Params::default(), name, pool.output, x.q)
        }
        FloatOp::Flatten { channels_last } => Lowered {
            layer: None,
            value: Value {
                shape: Shape {
                    h: 1,
                    w: 1,
                    c: x.shape.len() as u16,
                },
                chw: (!channels_last).then_some(x.shape),
                ..x
            },
        },
        FloatOp::Dense {
            weights,
            bias,
            inputs: n_in,
            outputs,
            act,
        } => {
            let qout = out_q(*act)?;
            if *n_in != x.shape.len() {
                return Err(format!(
                    "a dense layer takes {n_in} inputs but receives {}",
                    x.shape.len()
                ));
            }
            let permuted = permute_to_hwc(weights, *n_in, *outputs, x.chw);
            let (w, b, m, s) = quantize_weights(&permuted, bias, *outputs, x.q, qout);
            let (act_min, act_max) = qout.clamp(*act);
            let fc = FullyConnected {
                inputs: *n_in as u16,
                outputs: *outputs as u16,
                weights: &[],
                bias: &[],
                multiplier: &[],
                shift: &[],
                input_zero_point: x.q.zero_point,
                output_zero_point: qout.zero_point,
                act_min,
                act_max,
            };
            let params = Params {
                weights: w,
                bias: b,
                multiplier: m,
                shift: s,
                parts: Vec::new(),
            };
            let shape = Shape {
                h: 1,
                w: 1,
                c: *outputs as u16,
            };
            layer(
                Layer::FullyConnected(fc),
                params,
                format!("dense {n_in}→{outputs}"),
                shape,
                qout,
            )
        }
        FloatOp::Add { act } => {
            let qout = out_q(*act)?;
            let y = inputs[1];
            if x.shape != y.shape {
                return Err(format!(
                    "Add of a {:?} and a {:?} tensor: broadcasting is not supported",
                    x.shape, y.shape
                ));
            }
            let add = firmware::Add::from_scales(
                x.shape,
                [(x.q.scale, x.q.zero_point), (y.q.scale, y.q.zero_point)],
                (qout.scale, qout.zero_point),
                qout.clamp(*act),
            );
            layer(
                Layer::Add(add),
                Params::default(),
                "add".into(),
                x.shape,
                qout,
            )
        }
        FloatOp::Concat => {
            let qout = out_q(Act::NONE)?;
            if inputs
                .iter()
                .any(|v| (v.shape.h, v.shape.w) != (x.shape.h, x.shape.w))
            {
                return Err("Concat of tensors of different heights or widths".into());
            }
            let parts: Vec<firmware::ConcatPart> = inputs
                .iter()
                .map(|v| firmware::ConcatPart {
                    channels: v.shape.c,
                    rescale: firmware::Rescale::between(v.q.scale, v.q.zero_point, qout.scale),
                })
                .collect();
            let channels: u16 = inputs.iter().map(|v| v.shape.c).sum();
            let shape = Shape {
                c: channels,
                ..x.shape
            };
            let concat = firmware::Concat {
                output: shape,
                parts: &[],
                output_zero_point: qout.zero_point,
            };
            let params = Params {
                parts,
                ..Params::default()
            };
            let name = format!("concat {}→{channels}", inputs.len());
            layer(Layer::Concat(concat), params, name, shape, qout)
        }
    })
}

fn conv_act(op: &FloatOp) -> Act {
    match op {
        FloatOp::Conv { act, .. } => *act,
        _ => Act::NONE,
    }
}

/// A convolution quantized: its layer (slices empty), its arrays and its name.
fn lower_conv(
    op: &FloatOp,
    x: Value,
    qout: QParams,
) -> Result<(Conv<'static>, Params, String), String> {
    let FloatOp::Conv {
        weights,
        bias,
        out_c,
        groups,
        kernel,
        stride,
        pad,
        pad_end,
        dilation,
        act,
    } = op
    else {
        unreachable!("lower_conv takes a Conv")
    };
    let span = |k: usize, d: usize| (k - 1) * d + 1;
    let out = Shape {
        h: out_side(
            x.shape.h,
            span(kernel.0, dilation.0),
            stride.0,
            pad.0,
            pad_end.0,
            false,
        )?,
        w: out_side(
            x.shape.w,
            span(kernel.1, dilation.1),
            stride.1,
            pad.1,
            pad_end.1,
            false,
        )?,
        c: *out_c as u16,
    };
    let ic = x.shape.c as usize;
    if !ic.is_multiple_of(*groups) {
        return Err(format!(
            "group {groups} does not divide {ic} input channels"
        ));
    }
    let gc = ic / groups;
    if weights.len() != out_c * gc * kernel.0 * kernel.1 {
        return Err(format!(
            "conv weights do not match {ic} input channels in {groups} groups"
        ));
    }
    // ONNX [oc][ic/g][kh][kw] → firmware [oc][kh][kw][ic/g].
    let hwc: Vec<f32> = (0..*out_c)
        .flat_map(|o| {
            (0..kernel.0).flat_map(move |y| {
                (0..kernel.1).flat_map(move |x| {
                    (0..gc).map(move |i| ((o * gc + i) * kernel.0 + y) * kernel.1 + x)
                })
            })
        })
        .map(|i| weights[i])
        .collect();
    let (w, b, m, s) = quantize_weights(&hwc, bias, *out_c, x.q, qout);
    let (act_min, act_max) = qout.clamp(*act);
    let u8s = |p: (usize, usize)| -> Result<(u8, u8), String> {
        match (u8::try_from(p.0), u8::try_from(p.1)) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            _ => Err(format!("{p:?} is larger than 255")),
        }
    };
    let conv = Conv {
        input: x.shape,
        output: out,
        kernel: u8s(*kernel)?,
        stride: u8s(*stride)?,
        padding: u8s(*pad)?,
        dilation: u8s(*dilation)?,
        groups: *groups as u16,
        weights: &[],
        bias: &[],
        multiplier: &[],
        shift: &[],
        input_zero_point: x.q.zero_point,
        output_zero_point: qout.zero_point,
        act_min,
        act_max,
    };
    let name = match *groups {
        1 => format!("conv {ic}→{out_c} {}×{}", kernel.0, kernel.1),
        g if g == ic => format!("dwconv {ic}→{out_c} {}×{}", kernel.0, kernel.1),
        g => format!("conv {ic}→{out_c} {}×{} /{g} groups", kernel.0, kernel.1),
    };
    let name = match stride {
        (1, 1) => name,
        (h, w) => format!("{name} s{h}×{w}"),
    };
    let params = Params {
        weights: w,
        bias: b,
        multiplier: m,
        shift: s,
        parts: Vec::new(),
    };
    Ok((conv, params, name))
}

/// A pooling layer on `x` and its name.
fn lower_pool(op: &FloatOp, x: Value) -> Result<(Pool, String), String> {
    let FloatOp::Pool {
        average,
        kernel,
        stride,
        pad,
        pad_end,
        ceil,
        act,
    } = op
    else {
        unreachable!("lower_pool takes a Pool")
    };
    let shape = x.shape;
    let kernel = if kernel.0 == 0 {
        (shape.h as usize, shape.w as usize)
    } else {
        *kernel
    };
    if kernel.0 > 255
        || kernel.1 > 255
        || stride.0 > 255
        || stride.1 > 255
        || pad.0 > 255
        || pad.1 > 255
    {
        return Err(format!(
            "a {}×{} pool window is larger than 255",
            kernel.0, kernel.1
        ));
    }
    let out = Shape {
        h: out_side(shape.h, kernel.0, stride.0, pad.0, pad_end.0, *ceil)?,
        w: out_side(shape.w, kernel.1, stride.1, pad.1, pad_end.1, *ceil)?,
        c: shape.c,
    };
    let (act_min, act_max) = x.q.clamp(*act);
    let name = format!(
        "{} {}×{}",
        if *average { "avgpool" } else { "maxpool" },
        kernel.0,
        kernel.1
    );
    let pool = Pool {
        kind: if *average {
            PoolKind::Average
        } else {
            PoolKind::Max
        },
        input: shape,
        output: out,
        kernel: (kernel.0 as u8, kernel.1 as u8),
        stride: (stride.0 as u8, stride.1 as u8),
        padding: (pad.0 as u8, pad.1 as u8),
        act_min,
        act_max,
    };
    Ok((pool, name))
}

fn out_side(
    input: u16,
    kernel: usize,
    stride: usize,
    before: usize,
    after: usize,
    ceil: bool,
) -> Result<u16, String> {
    let span = input as usize + before + after;
    if kernel == 0 || stride == 0 || span < kernel {
        return Err(format!(
            "a {kernel}-wide window does not fit a {input}-wide input"
        ));
    }
    let steps = if ceil {
        (span - kernel).div_ceil(stride)
    } else {
        (span - kernel) / stride
    };
    Ok((steps + 1) as u16)
}

/// Reorders dense weights from ONNX's CHW flatten order to the firmware's HWC order.
fn permute_to_hwc(w: &[f32], inputs: usize, outputs: usize, flat: Option<Shape>) -> Vec<f32> {
    let Some(s) = flat else { return w.to_vec() };
    let (h, wd, c) = (s.h as usize, s.w as usize, s.c as usize);
    let mut out = vec![0f32; w.len()];
    for o in 0..outputs {
        for y in 0..h {
            for x in 0..wd {
                for ch in 0..c {
                    out[o * inputs + (y * wd + x) * c + ch] = w[o * inputs + (ch * h + y) * wd + x];
                }
            }
        }
    }
    out
}

type Quantized = (Vec<i8>, Vec<i32>, Vec<i32>, Vec<i8>);

/// Symmetric per-channel int8 weights, int32 biases at `s_in·s_w`, and the Q31 requantization.
fn quantize_weights(
    w: &[f32],
    bias: &[f32],
    channels: usize,
    qin: QParams,
    qout: QParams,
) -> Quantized {
    let per = w.len() / channels;
    let (mut qw, mut qb, mut qm, mut qs) = (
        Vec::with_capacity(w.len()),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for c in 0..channels {
        let row = &w[c * per..(c + 1) * per];
        let s_w = (row.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0).max(1e-12);
        qw.extend(
            row.iter()
                .map(|v| (v / s_w).round().clamp(-127.0, 127.0) as i8),
        );
        let s_acc = qin.scale as f64 * s_w as f64;
        qb.push(
            (bias[c] as f64 / s_acc)
                .round()
                .clamp(i32::MIN as f64, i32::MAX as f64) as i32,
        );
        let (m, s) = quantize_multiplier(s_acc / qout.scale as f64);
        qm.push(m);
        qs.push(s.clamp(-31, 30) as i8);
    }
    (qw, qb, qm, qs)
}

/// Min and max of each requantizing layer's output tensor over the calibration images,
/// through tract, by ONNX tensor name.
fn calibrate(
    c: &Classifier,
    nodes: &[graph::FloatNode],
    calib: &Dataset,
) -> Result<HashMap<String, (f32, f32)>, QuantizeError> {
    let mut names: Vec<&str> = nodes
        .iter()
        .filter(|n| n.op.requantizes())
        .map(|n| n.calibrate.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    let fail =
        |e: TractError| QuantizeError::Calibration(format!("tract failed: {}", one_line(&e)));
    let mut model = c.inference_model().clone();
    let outlets: Vec<OutletId> = names
        .iter()
        .map(|n| {
            model
                .find_outlet_label(n)
                .or_else(|| {
                    model
                        .node_by_name(n)
                        .ok()
                        .map(|node| OutletId::new(node.id, 0))
                })
                .or_else(|| {
                    model
                        .nodes()
                        .iter()
                        .find(|node| node.name == *n)
                        .map(|node| OutletId::new(node.id, 0))
                })
                .ok_or_else(|| {
                    QuantizeError::Calibration(format!("tensor {n:?} not found in tract's graph"))
                })
        })
        .collect::<Result<_, _>>()?;
    model.select_output_outlets(&outlets).map_err(fail)?;
    let batch = 100.min(calib.len()).max(1);
    let plan = model
        .with_input_fact(0, f32::fact(c.layout.shape(batch)).into())
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(fail)?;
    let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); names.len()];
    for start in (0..calib.len() / batch * batch).step_by(batch) {
        let pixels = &calib.pixels()[start * PIXELS..(start + batch) * PIXELS];
        let input =
            Tensor::from_shape(&c.layout.shape(batch), &c.scale_pixels(pixels)).map_err(fail)?;
        let outs = plan.run(tvec!(input.into())).map_err(fail)?;
        for (range, out) in ranges.iter_mut().zip(outs.iter()) {
            for &v in out.to_plain_array_view::<f32>().map_err(fail)?.iter() {
                *range = (range.0.min(v), range.1.max(v));
            }
        }
    }
    Ok(names.iter().map(|n| n.to_string()).zip(ranges).collect())
}

/// Default number of calibration images.
pub const DEFAULT_CALIB_COUNT: usize = 2000;
/// Default seed of the calibration sample.
pub const DEFAULT_CALIB_SEED: u64 = 1;

/// Quantizes `c` calibrating on `count` training images of the MNIST folder `data`, drawn
/// with `seed` (no test image is used).
pub fn quantize_mnist(
    c: &Classifier,
    data: &std::path::Path,
    count: usize,
    seed: u64,
) -> anyhow::Result<QuantModel> {
    let train = mnist::load(data, mnist::Split::Train)?;
    let calib = train.sample(count.max(1), seed);
    quantize(c, &calib).map_err(|e| anyhow::anyhow!("{}: {e}", c.path().display()))
}

/// Float accuracy, int8 accuracy and their top-1 agreement on a labelled set.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Cost {
    /// Images compared.
    pub images: usize,
    /// Float (tract) top-1 accuracy.
    pub float_accuracy: f64,
    /// int8 (firmware kernels) top-1 accuracy.
    pub int8_accuracy: f64,
    /// Share of images where both predict the same digit.
    pub agreement: f64,
}

/// What quantization cost on `ds`: runs the float model in tract and the int8 model through the
/// firmware kernels.
pub fn cost(c: &Classifier, q: &QuantModel, ds: &Dataset) -> anyhow::Result<Cost> {
    let float = crate::eval::predict_all(c, ds)?;
    let int8: Vec<u8> = simulate(q, ds)?
        .iter()
        .map(|l| crate::classifier::argmax(l) as u8)
        .collect();
    let n = ds.len().max(1) as f64;
    let hits = |p: &[u8]| p.iter().zip(ds.labels()).filter(|(a, b)| a == b).count() as f64 / n;
    Ok(Cost {
        images: ds.len(),
        float_accuracy: hits(&float),
        int8_accuracy: hits(&int8),
        agreement: float.iter().zip(&int8).filter(|(a, b)| a == b).count() as f64 / n,
    })
}
