//! The ONNX graph read as a chain of float layers the int8 firmware can run: BatchNorm folded
//! into its Conv, ReLU/Clip fused into the layer before, Dropout/Identity/final Softmax
//! dropped, shape arithmetic (burn's Shape → Gather → Concat → Reshape) recognised as a
//! flatten. Anything else is refused, naming the node and its operator.

use std::collections::HashMap;

use tract_onnx::pb::{self, GraphProto, NodeProto, TensorProto};

/// A float layer, weights in ONNX order.
#[derive(Debug, Clone)]
pub enum FloatLayer {
    /// Convolution; `weights` is `[oc][ic][kh][kw]`.
    Conv {
        /// Weights.
        weights: Vec<f32>,
        /// Bias per output channel.
        bias: Vec<f32>,
        /// Output channels.
        out_c: usize,
        /// Kernel (h, w).
        kernel: (usize, usize),
        /// Stride (h, w).
        stride: (usize, usize),
        /// Padding before (top, left).
        pad: (usize, usize),
        /// Fused activation bounds.
        act: Act,
        /// ONNX tensor holding the (activated) output.
        output: String,
    },
    /// Max or average pooling.
    Pool {
        /// Average rather than max.
        average: bool,
        /// Window (h, w).
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
        /// ONNX tensor holding the (activated) output.
        output: String,
    },
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
    const NONE: Act = Act {
        lo: f32::NEG_INFINITY,
        hi: f32::INFINITY,
    };
}

/// The graph as layers, and the name of its image input.
pub struct Chain {
    /// Layers in order.
    pub layers: Vec<FloatLayer>,
    /// Name of the ONNX input.
    pub input: String,
}

struct Reader<'g> {
    graph: &'g GraphProto,
    initializers: HashMap<&'g str, &'g TensorProto>,
    producers: HashMap<&'g str, &'g NodeProto>,
}

/// Reads the layer chain from `graph`; errors name the node and operator.
pub fn read(graph: &GraphProto, input: &str) -> Result<Chain, String> {
    let r = Reader {
        graph,
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
    let mut layers: Vec<FloatLayer> = Vec::new();
    let mut current = input.to_string();
    let final_outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    while let Some(node) = r.consumer(&current)? {
        let out = node.output.first().cloned().unwrap_or_default();
        let what = || format!("node {:?} ({})", node.name, node.op_type);
        match node.op_type.as_str() {
            "Conv" => layers.push(r.conv(node).map_err(|e| format!("{}: {e}", what()))?),
            "BatchNormalization" => {
                fold_batch_norm(&r, node, &mut layers).map_err(|e| format!("{}: {e}", what()))?
            }
            "Relu" => fuse(
                &mut layers,
                Act {
                    lo: 0.0,
                    hi: f32::INFINITY,
                },
                &out,
            )
            .map_err(|e| format!("{}: {e}", what()))?,
            "Clip" => {
                let act = r
                    .clip_bounds(node)
                    .map_err(|e| format!("{}: {e}", what()))?;
                fuse(&mut layers, act, &out).map_err(|e| format!("{}: {e}", what()))?
            }
            "MaxPool" | "AveragePool" | "GlobalAveragePool" => {
                layers.push(r.pool(node).map_err(|e| format!("{}: {e}", what()))?)
            }
            "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" | "Transpose" => {
                let flattened = layers
                    .iter()
                    .any(|l| matches!(l, FloatLayer::Flatten { .. } | FloatLayer::Dense { .. }));
                if node.op_type == "Transpose" && !layers.is_empty() {
                    // Channels last, then a flatten: the order the firmware keeps anyway.
                    if attr_ints(node, "perm").as_deref() == Some(&[0, 2, 3, 1][..]) && !flattened {
                        layers.push(FloatLayer::Flatten {
                            channels_last: true,
                        });
                        current = out;
                        continue;
                    }
                    return Err(format!(
                        "{}: a transpose after the first layer changes the memory layout",
                        what()
                    ));
                }
                // Before the first layer these only re-label a 28×28×1 image; after a conv they
                // flatten it.
                if layers
                    .iter()
                    .any(|l| matches!(l, FloatLayer::Conv { .. } | FloatLayer::Pool { .. }))
                    && !flattened
                {
                    layers.push(FloatLayer::Flatten {
                        channels_last: false,
                    });
                }
            }
            "Gemm" => layers.push(
                r.gemm(node, &current)
                    .map_err(|e| format!("{}: {e}", what()))?,
            ),
            "MatMul" => layers.push(
                r.matmul(node, &current)
                    .map_err(|e| format!("{}: {e}", what()))?,
            ),
            "Add" => r
                .add_bias(node, &current, &mut layers)
                .map_err(|e| format!("{}: {e}", what()))?,
            "Dropout" | "Identity" | "Cast" => {}
            "Softmax" | "LogSoftmax" if final_outputs.contains(&out.as_str()) => {}
            other => {
                return Err(format!(
                    "{}: operator {other} is not supported by Ember's int8 firmware",
                    what()
                ))
            }
        }
        if let Some(FloatLayer::Conv { output, .. } | FloatLayer::Dense { output, .. }) =
            layers.last_mut()
        {
            if matches!(
                node.op_type.as_str(),
                "Conv" | "Gemm" | "MatMul" | "Add" | "BatchNormalization"
            ) {
                *output = out.clone();
            }
        }
        current = out;
    }
    if !layers
        .iter()
        .any(|l| matches!(l, FloatLayer::Dense { .. } | FloatLayer::Conv { .. }))
    {
        return Err("the graph has no Conv, Gemm or MatMul layer".into());
    }
    Ok(Chain {
        layers,
        input: input.to_string(),
    })
}

fn fuse(layers: &mut [FloatLayer], act: Act, out: &str) -> Result<(), String> {
    // Max pooling commutes with a monotonic clamp, so a ReLU after it still fuses backwards.
    for layer in layers.iter_mut().rev() {
        match layer {
            FloatLayer::Conv { act: a, output, .. } | FloatLayer::Dense { act: a, output, .. } => {
                *a = Act {
                    lo: a.lo.max(act.lo),
                    hi: a.hi.min(act.hi),
                };
                *output = out.to_string();
                return Ok(());
            }
            FloatLayer::Pool { average: false, .. } | FloatLayer::Flatten { .. } => continue,
            FloatLayer::Pool { .. } => break,
        }
    }
    Err("an activation must follow a Conv, Gemm or MatMul (through max pools only)".into())
}

fn fold_batch_norm(r: &Reader, node: &NodeProto, layers: &mut [FloatLayer]) -> Result<(), String> {
    let Some(FloatLayer::Conv {
        weights,
        bias,
        out_c,
        act,
        ..
    }) = layers.last_mut()
    else {
        return Err("BatchNormalization must directly follow a Conv to be folded".into());
    };
    if *act != Act::NONE {
        return Err("BatchNormalization after an activation cannot be folded".into());
    }
    let get = |i: usize| {
        r.constant(node.input.get(i).map(String::as_str).unwrap_or(""))
            .map(|(_, v)| v)
    };
    let (gamma, beta, mean, var) = (get(1)?, get(2)?, get(3)?, get(4)?);
    let eps = attr_f(node, "epsilon").unwrap_or(1e-5);
    let per = weights.len() / *out_c;
    for c in 0..*out_c {
        let k = gamma[c] / (var[c] + eps).sqrt();
        weights[c * per..(c + 1) * per]
            .iter_mut()
            .for_each(|w| *w *= k);
        bias[c] = (bias[c] - mean[c]) * k + beta[c];
    }
    Ok(())
}

impl<'g> Reader<'g> {
    /// The one node reading `tensor` as data (`Shape` only reads its dimensions).
    fn consumer(&self, tensor: &str) -> Result<Option<&'g NodeProto>, String> {
        let readers: Vec<&NodeProto> = self
            .graph
            .node
            .iter()
            .filter(|n| n.op_type != "Shape" && n.input.iter().any(|i| i == tensor))
            .collect();
        match readers.len() {
            0 | 1 => Ok(readers.first().copied()),
            _ => Err(format!(
                "tensor {tensor:?} feeds {} nodes: only a chain of layers is supported",
                readers.len()
            )),
        }
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

    fn conv(&self, node: &NodeProto) -> Result<FloatLayer, String> {
        let (dims, weights) = self.constant(&node.input[1])?;
        if dims.len() != 4 {
            return Err("only 2-D convolutions are supported".into());
        }
        if attr_i(node, "group").unwrap_or(1) != 1 {
            return Err("grouped convolutions are not supported".into());
        }
        if attr_ints(node, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
            return Err("dilated convolutions are not supported".into());
        }
        let out_c = dims[0] as usize;
        let bias = match node.input.get(2).filter(|s| !s.is_empty()) {
            Some(b) => self.constant(b)?.1,
            None => vec![0.0; out_c],
        };
        let kernel = (dims[2] as usize, dims[3] as usize);
        let (stride, pad, _) = window(node, kernel)?;
        Ok(FloatLayer::Conv {
            weights,
            bias,
            out_c,
            kernel,
            stride,
            pad,
            act: Act::NONE,
            output: String::new(),
        })
    }

    fn pool(&self, node: &NodeProto) -> Result<FloatLayer, String> {
        let global = node.op_type == "GlobalAveragePool";
        let kernel = match attr_ints(node, "kernel_shape") {
            Some(k) if k.len() == 2 => (k[0] as usize, k[1] as usize),
            _ if global => (0, 0),
            _ => return Err("kernel_shape must have two values".into()),
        };
        if node.op_type == "AveragePool" && attr_i(node, "count_include_pad").unwrap_or(0) != 0 {
            return Err("count_include_pad=1 is not supported".into());
        }
        let (stride, pad, pad_end) = if global {
            ((1, 1), (0, 0), (0, 0))
        } else {
            window(node, kernel)?
        };
        Ok(FloatLayer::Pool {
            average: node.op_type != "MaxPool",
            kernel,
            stride,
            pad,
            pad_end,
            ceil: attr_i(node, "ceil_mode").unwrap_or(0) == 1,
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

    fn gemm(&self, node: &NodeProto, data: &str) -> Result<FloatLayer, String> {
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
        Ok(FloatLayer::Dense {
            weights,
            bias,
            inputs,
            outputs,
            act: Act::NONE,
            output: String::new(),
        })
    }

    fn matmul(&self, node: &NodeProto, data: &str) -> Result<FloatLayer, String> {
        if node.input.first().map(String::as_str) != Some(data) {
            return Err("only MatMul(x, W) with a constant W is supported".into());
        }
        let (dims, w) = self.constant(&node.input[1])?;
        if dims.len() != 2 {
            return Err("the weight of MatMul must be a matrix".into());
        }
        let (inputs, outputs) = (dims[0] as usize, dims[1] as usize);
        Ok(FloatLayer::Dense {
            weights: transpose(&w, inputs, outputs),
            bias: vec![0.0; outputs],
            inputs,
            outputs,
            act: Act::NONE,
            output: String::new(),
        })
    }

    fn add_bias(
        &self,
        node: &NodeProto,
        data: &str,
        layers: &mut [FloatLayer],
    ) -> Result<(), String> {
        let (_, b) = self.constant(self.other(node, data)?)?;
        match layers.last_mut() {
            Some(FloatLayer::Dense { bias, act, .. })
            | Some(FloatLayer::Conv { bias, act, .. })
                if *act == Act::NONE && b.len() == bias.len() =>
            {
                bias.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                Ok(())
            }
            _ => Err("Add is supported only as the bias of the Conv/MatMul right before it".into()),
        }
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
