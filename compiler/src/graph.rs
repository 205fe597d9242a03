//! The ONNX graph read as a graph of float layers the int8 firmware can run: BatchNorm folded
//! into its Conv, ReLU/Clip fused into the layer before, Dropout/Identity/final Softmax
//! dropped, shape arithmetic (burn's Shape → Gather → Concat → Reshape) folded away. A tensor
//! may feed several layers, and Add and Concat join branches. Anything else is refused,
//! naming the node and its operator.
//!
//! The ONNX operators taken are one registry, [`OPS`]: `runtime inspect` and every refusal
//! read it.

use std::collections::HashMap;

use crate::pb::{self, GraphProto, NodeProto, TensorProto};

use crate::error::{Node, QuantizeError};

/// A float layer, weights in ONNX order.
#[derive(Debug, Clone)]
pub enum FloatOp {
    /// Convolution; `weights` is `[oc][ic / groups][kh][kw]`.
    Conv {
        /// Weights.
        weights: Vec<f32>,
        /// Bias per output channel.
        bias: Vec<f32>,
        /// Output channels.
        out_c: usize,
        /// Channel groups.
        groups: usize,
        /// Kernel (h, w).
        kernel: (usize, usize),
        /// Stride (h, w).
        stride: (usize, usize),
        /// Padding before (top, left).
        pad: (usize, usize),
        /// Padding after (bottom, right): it only sets the output's size.
        pad_end: (usize, usize),
        /// Dilation (h, w).
        dilation: (usize, usize),
        /// Fused activation bounds.
        act: Act,
    },
    /// Max or average pooling.
    Pool {
        /// Average rather than max.
        average: bool,
        /// Window (h, w); (0, 0) for a global pool.
        kernel: (usize, usize),
        /// Stride (h, w).
        stride: (usize, usize),
        /// Padding before (top, left).
        pad: (usize, usize),
        /// Padding after (bottom, right).
        pad_end: (usize, usize),
        /// Output rounds up.
        ceil: bool,
        /// Fused activation bounds.
        act: Act,
    },
    /// To a vector: ONNX's CHW order (c·H·W + h·W + w), or HWC when a Transpose to channels
    /// last came first (as tf2onnx writes a Keras Flatten after a Conv2D).
    Flatten {
        /// The vector is in HWC order, the firmware's own.
        channels_last: bool,
    },
    /// Fully connected; `weights` is `[out][in]`, inputs in ONNX (CHW) order.
    Dense {
        /// Weights.
        weights: Vec<f32>,
        /// Bias.
        bias: Vec<f32>,
        /// Input features.
        inputs: usize,
        /// Output features.
        outputs: usize,
        /// Fused activation bounds.
        act: Act,
    },
    /// Elementwise sum of two tensors.
    Add {
        /// Fused activation bounds.
        act: Act,
    },
    /// Concatenation on channels.
    Concat,
}

impl FloatOp {
    /// Whether the layer gets quantization of its own (the others keep their input's).
    pub fn requantizes(&self) -> bool {
        matches!(
            self,
            FloatOp::Conv { .. } | FloatOp::Dense { .. } | FloatOp::Add { .. } | FloatOp::Concat
        )
    }
}

/// One layer: what it does, the values it reads and the one it writes.
#[derive(Debug, Clone)]
pub struct FloatNode {
    /// The layer.
    pub op: FloatOp,
    /// Values read (0 is the image).
    pub inputs: Vec<usize>,
    /// Value written.
    pub output: usize,
    /// The ONNX tensor whose range sets the output's quantization (after fused activations).
    pub calibrate: String,
    /// The ONNX node it was read from, for errors.
    pub node: Node,
}

/// The graph as layers in a topological order, and the name of its image input.
pub struct FloatGraph {
    /// Layers in order.
    pub nodes: Vec<FloatNode>,
    /// The value holding the scores.
    pub output: usize,
    /// Name of the ONNX input.
    pub input: String,
}

/// Bounds of a fused activation (ReLU: 0..∞, ReLU6: 0..6, none: -∞..∞).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Act {
    /// Lower bound.
    pub lo: f32,
    /// Upper bound.
    pub hi: f32,
}

impl Act {
    /// No activation.
    pub const NONE: Act = Act {
        lo: f32::NEG_INFINITY,
        hi: f32::INFINITY,
    };
    const RELU: Act = Act {
        lo: 0.0,
        hi: f32::INFINITY,
    };
}

/// The ONNX operators Ember's int8 compiler takes: the one list, which `inspect` and every
/// refusal read. A zero Pad folds into the Conv that reads it. Shape arithmetic on constants (Shape, Gather, Concat of shapes, Reshape of
/// constants) folds away whatever its operators.
pub const OPS: [&str; 23] = [
    "Conv",
    "BatchNormalization",
    "Relu",
    "Clip",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Flatten",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Transpose",
    "Gemm",
    "MatMul",
    "Add",
    "Concat",
    "Pad",
    "Dropout",
    "Identity",
    "Cast",
    "Softmax",
    "LogSoftmax",
    "Shape",
];

struct Reader<'g> {
    initializers: HashMap<&'g str, &'g TensorProto>,
    producers: HashMap<&'g str, &'g NodeProto>,
}

/// What a value is: the image (before any layer), a spatial tensor, or a vector.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Image,
    Spatial,
    Flat,
}

/// The graph being built: its nodes, and per value its kind and how many ONNX nodes read it.
struct Builder {
    nodes: Vec<FloatNode>,
    kinds: Vec<Kind>,
    readers: Vec<usize>,
    /// The node writing each value (none for the image).
    writer: Vec<Option<usize>>,
    /// Zero padding waiting for the Conv that reads it, by the Pad's output name: the Pad
    /// node's name and (top, left, bottom, right).
    pads: HashMap<String, (String, [usize; 4])>,
}

impl Builder {
    fn value(&mut self, kind: Kind, readers: usize) -> usize {
        self.kinds.push(kind);
        self.readers.push(readers);
        self.writer.push(None);
        self.kinds.len() - 1
    }

    fn push(
        &mut self,
        op: FloatOp,
        inputs: Vec<usize>,
        (out, node): (&str, Node),
        readers: usize,
    ) -> usize {
        let kind = match op {
            FloatOp::Flatten { .. } | FloatOp::Dense { .. } => Kind::Flat,
            _ => Kind::Spatial,
        };
        let output = self.value(kind, readers);
        self.writer[output] = Some(self.nodes.len());
        self.nodes.push(FloatNode {
            op,
            inputs,
            output,
            calibrate: out.to_string(),
            node,
        });
        output
    }

    /// The node writing `v`, when `v` has no other reader than the node being read.
    fn sole_writer(&mut self, v: usize) -> Option<&mut FloatNode> {
        let node = self.writer[v]?;
        (self.readers[v] == 1).then(move || &mut self.nodes[node])
    }
}

/// The name and operator of an ONNX node.
fn onnx_node(node: &NodeProto) -> Node {
    Node {
        name: node.name.clone(),
        op: node.op_type.clone(),
    }
}

/// Reads the layer graph from `graph`; errors name the node and operator.
pub fn read(graph: &GraphProto, input: &str) -> Result<FloatGraph, QuantizeError> {
    let r = Reader {
        initializers: graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect(),
        producers: graph
            .node
            .iter()
            .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
            .collect(),
    };
    let mut consumers: HashMap<&str, usize> = HashMap::new();
    for n in graph.node.iter().filter(|n| n.op_type != "Shape") {
        for i in &n.input {
            *consumers.entry(i.as_str()).or_default() += 1;
        }
    }
    let final_outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let readers = |name: &str| consumers.get(name).copied().unwrap_or(0);
    let mut b = Builder {
        nodes: Vec::new(),
        kinds: Vec::new(),
        readers: Vec::new(),
        writer: Vec::new(),
        pads: HashMap::new(),
    };
    let mut value_of: HashMap<String, usize> = HashMap::new();
    value_of.insert(input.to_string(), b.value(Kind::Image, readers(input)));
    for node in &graph.node {
        let data: Vec<usize> = node
            .input
            .iter()
            .filter_map(|i| value_of.get(i).copied())
            .collect();
        // Constants and shape arithmetic never touch the image.
        if data.is_empty() || node.op_type == "Shape" {
            continue;
        }
        let out = node.output.first().cloned().unwrap_or_default();
        let step = r
            .node(&mut b, node, &data, &out, readers(&out), &final_outputs)
            .map_err(|reason| QuantizeError::Unsupported {
                node: onnx_node(node),
                reason,
            })?;
        match step {
            Step::New(v) => {
                value_of.insert(out, v);
            }
            Step::Same(v) => {
                // The value keeps its readers, but now through this name.
                b.readers[v] = b.readers[v] - 1 + readers(&out);
                value_of.insert(out, v);
            }
        }
    }
    if let Some((name, _)) = b.pads.values().next() {
        return Err(QuantizeError::Unsupported {
            node: Node {
                name: name.clone(),
                op: "Pad".into(),
            },
            reason: "a Pad is supported only right before the Conv that reads it".into(),
        });
    }
    let output = final_outputs
        .first()
        .and_then(|o| value_of.get(*o).copied())
        .ok_or("the graph's output does not depend on its input")?;
    if !b
        .nodes
        .iter()
        .any(|n| matches!(n.op, FloatOp::Dense { .. } | FloatOp::Conv { .. }))
    {
        return Err("the graph has no Conv, Gemm or MatMul layer".into());
    }
    Ok(FloatGraph {
        nodes: b.nodes,
        output,
        input: input.to_string(),
    })
}

/// What an ONNX node became: a new value, or the value it read (fused, folded or dropped).
enum Step {
    New(usize),
    Same(usize),
}

/// The layer writing `v` now ends at ONNX tensor `out` (a bias or a BatchNorm folded into it).
fn recalibrate(b: &mut Builder, v: usize, out: &str) {
    if let Some(node) = b.sole_writer(v) {
        node.calibrate = out.to_string();
    }
}

/// Narrows the activation of the layer writing `v` to `act`. A max pool commutes with a
/// monotonic clamp, so the clamp still goes to the layer before it.
fn fuse(b: &mut Builder, v: usize, act: Act, out: &str) -> Result<(), String> {
    let narrow = |a: &mut Act| {
        *a = Act {
            lo: a.lo.max(act.lo),
            hi: a.hi.min(act.hi),
        }
    };
    let mut v = v;
    loop {
        let Some(node) = b.sole_writer(v) else {
            return Err(
                "an activation must follow a Conv, Gemm, MatMul or Add that nothing else reads"
                    .into(),
            );
        };
        match &mut node.op {
            FloatOp::Conv { act, .. } | FloatOp::Dense { act, .. } | FloatOp::Add { act } => {
                narrow(act);
                node.calibrate = out.to_string();
                return Ok(());
            }
            FloatOp::Pool { average: false, .. } | FloatOp::Flatten { .. } => v = node.inputs[0],
            FloatOp::Pool { act, .. } => {
                narrow(act);
                return Ok(());
            }
            FloatOp::Concat => {
                return Err("an activation after a Concat is not supported".into());
            }
        }
    }
}

fn fold_batch_norm(
    r: &Reader,
    node: &NodeProto,
    writer: Option<&mut FloatNode>,
) -> Result<(), String> {
    let Some((weights, bias, act)) = writer.and_then(|n| match &mut n.op {
        FloatOp::Conv {
            weights, bias, act, ..
        }
        | FloatOp::Dense {
            weights, bias, act, ..
        } => Some((weights, bias, act)),
        _ => None,
    }) else {
        return Err(
            "BatchNormalization must directly follow a Conv or Gemm that nothing else reads".into(),
        );
    };
    if *act != Act::NONE {
        return Err("BatchNormalization after an activation cannot be folded".into());
    }
    let out_c = bias.len();
    let get = |i: usize| {
        r.constant(node.input.get(i).map(String::as_str).unwrap_or(""))
            .map(|(_, v)| v)
    };
    let (gamma, beta, mean, var) = (get(1)?, get(2)?, get(3)?, get(4)?);
    let eps = attr_f(node, "epsilon").unwrap_or(1e-5);
    if [&gamma, &beta, &mean, &var]
        .iter()
        .any(|v| v.len() != out_c)
    {
        return Err(format!(
            "its parameters are not one per each of {out_c} channels"
        ));
    }
    let per = weights.len() / out_c;
    for c in 0..out_c {
        let k = gamma[c] / (var[c] + eps).sqrt();
        weights[c * per..(c + 1) * per]
            .iter_mut()
            .for_each(|w| *w *= k);
        bias[c] = (bias[c] - mean[c]) * k + beta[c];
    }
    Ok(())
}

impl<'g> Reader<'g> {
    /// Reads one ONNX node whose data inputs are the values `data`.
    fn node(
        &self,
        b: &mut Builder,
        node: &NodeProto,
        data: &[usize],
        out: &str,
        readers: usize,
        final_outputs: &[&str],
    ) -> Result<Step, String> {
        let v = data[0];
        let new = |b: &mut Builder, op: FloatOp, inputs: Vec<usize>| {
            Step::New(b.push(op, inputs, (out, onnx_node(node)), readers))
        };
        let op = node.op_type.as_str();
        Ok(match op {
            "Conv" => {
                let mut conv = self.conv(node)?;
                if let (Some((_, [t, l, bottom, r])), FloatOp::Conv { pad, pad_end, .. }) =
                    (b.pads.remove(&node.input[0]), &mut conv)
                {
                    *pad = (pad.0 + t, pad.1 + l);
                    *pad_end = (pad_end.0 + bottom, pad_end.1 + r);
                }
                new(b, conv, vec![v])
            }
            "Pad" => {
                let pads = self.zero_pads(node)?;
                if readers != 1 {
                    return Err("a Pad is supported only before one Conv".into());
                }
                b.pads.insert(out.to_string(), (node.name.clone(), pads));
                Step::Same(v)
            }
            "BatchNormalization" => {
                fold_batch_norm(self, node, b.sole_writer(v))?;
                recalibrate(b, v, out);
                Step::Same(v)
            }
            "Relu" => {
                fuse(b, v, Act::RELU, out)?;
                Step::Same(v)
            }
            "Clip" => {
                fuse(b, v, self.clip_bounds(node)?, out)?;
                Step::Same(v)
            }
            "MaxPool" | "AveragePool" | "GlobalAveragePool" => new(b, self.pool(node)?, vec![v]),
            "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" | "Transpose" => {
                match (b.kinds[v], op) {
                    // Before the first layer these only re-label the image.
                    (Kind::Image, _) | (Kind::Flat, "Reshape" | "Flatten" | "Squeeze") => {
                        Step::Same(v)
                    }
                    (Kind::Spatial, "Transpose") => {
                        if attr_ints(node, "perm").as_deref() != Some(&[0, 2, 3, 1][..]) {
                            return Err(
                                "a transpose after the first layer changes the memory layout"
                                    .into(),
                            );
                        }
                        // Channels last, then a flatten: the order the firmware keeps anyway.
                        let flat = FloatOp::Flatten {
                            channels_last: true,
                        };
                        new(b, flat, vec![v])
                    }
                    (Kind::Spatial, _) => {
                        let flat = FloatOp::Flatten {
                            channels_last: false,
                        };
                        new(b, flat, vec![v])
                    }
                    (Kind::Flat, _) => {
                        return Err("this reshape of a vector is not supported".into());
                    }
                }
            }
            "Gemm" => new(b, self.gemm(node, &node.input[0])?, vec![v]),
            "MatMul" => new(b, self.matmul(node, &node.input[0])?, vec![v]),
            "Add" if data.len() == 2 => new(b, FloatOp::Add { act: Act::NONE }, data.to_vec()),
            "Add" => {
                let data_name = node.input.iter().find(|i| self.constant(i).is_err());
                let bias = self
                    .constant(self.other(node, data_name.map_or("", |s| s))?)?
                    .1;
                add_bias(b.sole_writer(v), &bias)?;
                recalibrate(b, v, out);
                Step::Same(v)
            }
            "Concat" => {
                let axis = attr_i(node, "axis").unwrap_or(0);
                if axis != 1 && axis != -3 {
                    return Err(format!(
                        "only a concat on channels (axis 1) is supported, not axis {axis}"
                    ));
                }
                if data.len() != node.input.len() {
                    return Err("every input of a Concat must be a computed tensor".into());
                }
                if data.len() > firmware::kernels::MAX_PARTS {
                    return Err(format!(
                        "a Concat of more than {} tensors is not supported",
                        firmware::kernels::MAX_PARTS
                    ));
                }
                new(b, FloatOp::Concat, data.to_vec())
            }
            "Dropout" | "Identity" | "Cast" => Step::Same(v),
            "Softmax" | "LogSoftmax" if final_outputs.contains(&out) => Step::Same(v),
            other if OPS.contains(&other) => {
                return Err(format!(
                    "this use of {other} is not supported by Ember's int8 firmware"
                ))
            }
            other => {
                return Err(format!(
                    "operator {other} is not supported by Ember's int8 firmware"
                ))
            }
        })
    }

    /// A Pad's (top, left, bottom, right), when it pads only height and width with zeros.
    fn zero_pads(&self, node: &NodeProto) -> Result<[usize; 4], String> {
        let mode = attr(node, "mode").map(|a| String::from_utf8_lossy(&a.s).into_owned());
        if mode.as_deref().is_some_and(|m| m != "constant") {
            return Err(format!("mode {mode:?}: only constant padding is supported"));
        }
        let pads = match node.input.get(1).filter(|s| !s.is_empty()) {
            Some(name) => self.int64s(name)?,
            None => attr_ints(node, "pads").ok_or("a Pad without pads")?,
        };
        let value = match node.input.get(2).filter(|s| !s.is_empty()) {
            Some(name) => self.constant(name)?.1.first().copied().unwrap_or(0.0),
            None => attr_f(node, "value").unwrap_or(0.0),
        };
        if node.input.get(3).is_some_and(|s| !s.is_empty()) {
            return Err("a Pad with axes is not supported".into());
        }
        match pads.as_slice() {
            [0, 0, t, l, 0, 0, b, r] if value == 0.0 && [t, l, b, r].iter().all(|&&p| p >= 0) => {
                Ok([*t as usize, *l as usize, *b as usize, *r as usize])
            }
            _ => Err(format!(
                "pads {pads:?} with value {value}: only zero padding of height and width is supported"
            )),
        }
    }

    /// The values of a constant int64 tensor (an initializer or a Constant node).
    fn int64s(&self, name: &str) -> Result<Vec<i64>, String> {
        let t = match (self.initializers.get(name), self.producers.get(name)) {
            (Some(t), _) => *t,
            (None, Some(n)) if n.op_type == "Constant" => n
                .attribute
                .iter()
                .find_map(|a| a.t.as_ref())
                .ok_or("Constant without a tensor value")?,
            _ => return Err(format!("{name:?} is not a constant")),
        };
        if t.data_type != 7 {
            return Err(format!("tensor {name:?} is not int64"));
        }
        if !t.int64_data.is_empty() {
            return Ok(t.int64_data.clone());
        }
        Ok(t.raw_data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .collect())
    }

    /// The value of a constant tensor: an initializer, a Constant node, or a reshape of one.
    fn constant(&self, name: &str) -> Result<(Vec<i64>, Vec<f32>), String> {
        if let Some(t) = self.initializers.get(name) {
            return floats(t).map(|v| (t.dims.clone(), v));
        }
        match self.producers.get(name) {
            Some(n) if n.op_type == "Constant" => {
                let t = n
                    .attribute
                    .iter()
                    .find_map(|a| a.t.as_ref())
                    .ok_or("Constant without a tensor value")?;
                floats(t).map(|v| (t.dims.clone(), v))
            }
            Some(n)
                if matches!(
                    n.op_type.as_str(),
                    "Reshape" | "Unsqueeze" | "Squeeze" | "Identity" | "Flatten"
                ) =>
            {
                let (_, v) = self.constant(&n.input[0])?;
                Ok((vec![v.len() as i64], v))
            }
            _ => Err(format!("{name:?} is not a constant")),
        }
    }

    fn conv(&self, node: &NodeProto) -> Result<FloatOp, String> {
        let (dims, weights) = self.constant(&node.input[1])?;
        if dims.len() != 4 {
            return Err("only 2-D convolutions are supported".into());
        }
        let groups = attr_i(node, "group").unwrap_or(1);
        let out_c = dims[0] as usize;
        if groups < 1 || !out_c.is_multiple_of(groups as usize) {
            return Err(format!(
                "group {groups} does not divide {out_c} output channels"
            ));
        }
        let dilation = match attr_ints(node, "dilations").as_deref() {
            None => (1, 1),
            Some([h, w]) if *h >= 1 && *w >= 1 => (*h as usize, *w as usize),
            Some(d) => return Err(format!("dilations {d:?} are not two positive numbers")),
        };
        let bias = match node.input.get(2).filter(|s| !s.is_empty()) {
            Some(b) => self.constant(b)?.1,
            None => vec![0.0; out_c],
        };
        let kernel = (dims[2] as usize, dims[3] as usize);
        let (stride, pad, pad_end) = window(node, kernel)?;
        Ok(FloatOp::Conv {
            weights,
            bias,
            out_c,
            groups: groups as usize,
            kernel,
            stride,
            pad,
            pad_end,
            dilation,
            act: Act::NONE,
        })
    }

    fn pool(&self, node: &NodeProto) -> Result<FloatOp, String> {
        let global = node.op_type == "GlobalAveragePool";
        let kernel = match attr_ints(node, "kernel_shape") {
            Some(k) if k.len() == 2 => (k[0] as usize, k[1] as usize),
            _ if global => (0, 0),
            _ => return Err("kernel_shape must have two values".into()),
        };
        let (stride, pad, pad_end) = if global {
            ((1, 1), (0, 0), (0, 0))
        } else {
            window(node, kernel)?
        };
        let ceil = attr_i(node, "ceil_mode").unwrap_or(0) == 1;
        // PyTorch's AvgPool2d writes count_include_pad=1 by default; with no padding (and no
        // window past the edge) no window reaches a pad, and the divisor is the same.
        let include_pad = attr_i(node, "count_include_pad").unwrap_or(0) != 0;
        if node.op_type == "AveragePool"
            && include_pad
            && (pad != (0, 0) || pad_end != (0, 0) || ceil)
        {
            return Err(
                "count_include_pad=1 with padding or ceil_mode is not supported (the firmware's average leaves padding out of the divisor)"
                    .into(),
            );
        }
        Ok(FloatOp::Pool {
            average: node.op_type != "MaxPool",
            kernel,
            stride,
            pad,
            pad_end,
            ceil,
            act: Act::NONE,
        })
    }

    fn clip_bounds(&self, node: &NodeProto) -> Result<Act, String> {
        let bound = |i: usize, attr: &str, default: f32| -> Result<f32, String> {
            match node.input.get(i).filter(|s| !s.is_empty()) {
                Some(name) => Ok(self.constant(name)?.1.first().copied().unwrap_or(default)),
                None => Ok(attr_f(node, attr).unwrap_or(default)),
            }
        };
        Ok(Act {
            lo: bound(1, "min", f32::NEG_INFINITY)?,
            hi: bound(2, "max", f32::INFINITY)?,
        })
    }

    /// The other input of a binary node whose data input is `data`.
    fn other<'n>(&self, node: &'n NodeProto, data: &str) -> Result<&'n str, String> {
        node.input
            .iter()
            .find(|i| *i != data)
            .map(String::as_str)
            .ok_or_else(|| "both inputs are the data".into())
    }

    fn gemm(&self, node: &NodeProto, data: &str) -> Result<FloatOp, String> {
        if node.input.first().map(String::as_str) != Some(data)
            || attr_i(node, "transA").unwrap_or(0) != 0
        {
            return Err("only Gemm(x, W, b) with the data as A and transA=0 is supported".into());
        }
        let (dims, w) = self.constant(&node.input[1])?;
        let (alpha, beta) = (
            attr_f(node, "alpha").unwrap_or(1.0),
            attr_f(node, "beta").unwrap_or(1.0),
        );
        let trans_b = attr_i(node, "transB").unwrap_or(0) == 1;
        let (inputs, outputs) = if trans_b {
            (dims[1] as usize, dims[0] as usize)
        } else {
            (dims[0] as usize, dims[1] as usize)
        };
        let mut weights = if trans_b {
            w
        } else {
            transpose(&w, inputs, outputs)
        };
        weights.iter_mut().for_each(|v| *v *= alpha);
        let bias = match node.input.get(2).filter(|s| !s.is_empty()) {
            Some(b) => self.constant(b)?.1.iter().map(|v| v * beta).collect(),
            None => vec![0.0; outputs],
        };
        if bias.len() != outputs {
            return Err(format!(
                "bias has {} values for {outputs} outputs",
                bias.len()
            ));
        }
        Ok(FloatOp::Dense {
            weights,
            bias,
            inputs,
            outputs,
            act: Act::NONE,
        })
    }

    fn matmul(&self, node: &NodeProto, data: &str) -> Result<FloatOp, String> {
        if node.input.first().map(String::as_str) != Some(data) {
            return Err("only MatMul(x, W) with a constant W is supported".into());
        }
        let (dims, w) = self.constant(&node.input[1])?;
        if dims.len() != 2 {
            return Err("the weight of MatMul must be a matrix".into());
        }
        let (inputs, outputs) = (dims[0] as usize, dims[1] as usize);
        Ok(FloatOp::Dense {
            weights: transpose(&w, inputs, outputs),
            bias: vec![0.0; outputs],
            inputs,
            outputs,
            act: Act::NONE,
        })
    }
}

/// Adds a constant `b` to the bias of the layer writing the value (a Linear exported as MatMul
/// + Add).
fn add_bias(writer: Option<&mut FloatNode>, b: &[f32]) -> Result<(), String> {
    match writer.map(|n| &mut n.op) {
        Some(FloatOp::Dense { bias, act, .. }) | Some(FloatOp::Conv { bias, act, .. })
            if *act == Act::NONE && b.len() == bias.len() =>
        {
            bias.iter_mut().zip(b).for_each(|(x, y)| *x += y);
            Ok(())
        }
        _ => Err(
            "an Add of a constant is supported only as the bias of the Conv/MatMul right before it"
                .into(),
        ),
    }
}

fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| w[r * cols + c]))
        .collect()
}

/// Stride, padding before and padding after, each (rows, columns).
type Window = ((usize, usize), (usize, usize), (usize, usize));

fn window(node: &NodeProto, kernel: (usize, usize)) -> Result<Window, String> {
    let strides = attr_ints(node, "strides").unwrap_or(vec![1, 1]);
    let pads = attr_ints(node, "pads").unwrap_or(vec![0, 0, 0, 0]);
    let auto = node
        .attribute
        .iter()
        .find(|a| a.name == "auto_pad")
        .map(|a| String::from_utf8_lossy(&a.s).into_owned());
    if matches!(auto.as_deref(), Some("SAME_UPPER" | "SAME_LOWER")) {
        // Only stride 1 keeps "same" padding independent of the input size.
        if strides.iter().any(|&s| s != 1) {
            return Err("auto_pad SAME with strides is not supported".into());
        }
        let (th, tw) = (kernel.0 - 1, kernel.1 - 1);
        let lower = auto.as_deref() == Some("SAME_LOWER");
        let before = |t: usize| if lower { t.div_ceil(2) } else { t / 2 };
        return Ok((
            (1, 1),
            (before(th), before(tw)),
            (th - before(th), tw - before(tw)),
        ));
    }
    if strides.len() != 2 || pads.len() != 4 || strides.iter().chain(&pads).any(|&v| v < 0) {
        return Err("strides and pads must be 2-D and non-negative".into());
    }
    let u = |v: i64| v as usize;
    Ok((
        (u(strides[0]), u(strides[1])),
        (u(pads[0]), u(pads[1])),
        (u(pads[2]), u(pads[3])),
    ))
}

fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_i(node: &NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i)
}

fn attr_f(node: &NodeProto, name: &str) -> Option<f32> {
    attr(node, name).map(|a| a.f)
}

fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

/// The values of a float tensor (float_data or little-endian raw_data).
fn floats(t: &TensorProto) -> Result<Vec<f32>, String> {
    if t.data_type != 1 {
        return Err(format!("tensor {:?} is not float32", t.name));
    }
    if !t.float_data.is_empty() {
        return Ok(t.float_data.clone());
    }
    if !t.raw_data.len().is_multiple_of(4) {
        return Err(format!(
            "tensor {:?} has {} raw bytes, not a whole number of floats",
            t.name,
            t.raw_data.len()
        ));
    }
    Ok(t.raw_data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}
