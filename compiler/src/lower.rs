//! Lowering: each float node of the graph quantized to one of the firmware's layer types, with
//! the ranges the calibration measured.

use firmware::requant::quantize_multiplier;
use firmware::{Conv, ConvWeights, FullyConnected, Layer, Pool, PoolKind, Shape};

use crate::graph::{self, Act, FloatOp};
use crate::ir::{Params, QLayer, QParams, QuantModel};
use crate::{Calibrate, Input, QuantizeError};

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

/// Quantizes `graph` for an input of `input`, with the output ranges `calib` measures.
pub(crate) fn quantize(
    graph: &graph::FloatGraph,
    input: Input,
    calib: &mut dyn Calibrate,
) -> Result<QuantModel, QuantizeError> {
    let ranges = calibration(graph, calib)?;
    let input_zero_point = (-128.0 - input.pixel_offset / input.pixel_scale)
        .round()
        .clamp(-128.0, 127.0) as i8;
    let image = Shape { h: 28, w: 28, c: 1 };
    let input_q = QParams {
        scale: input.pixel_scale,
        zero_point: input_zero_point,
    };
    let mut values: Vec<Option<Value>> = vec![None; graph.nodes.len() + 1];
    values[0] = Some(Value {
        tensor: 0,
        shape: image,
        q: input_q,
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
        input: input_q,
        pixel: (input.pixel_scale, input.pixel_offset),
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
                ..Params::default()
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
        weights: ConvWeights::Plain(&[]),
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
    // The im2col kernel's layout, made once here so that no core repacks it.
    let mut packed = Vec::new();
    if conv.im2col_fits() {
        packed.resize(conv.packed_words(), 0);
        conv.pack(&w, &mut packed);
    }
    let params = Params {
        weights: w,
        packed,
        bias: b,
        multiplier: m,
        shift: s,
        ..Params::default()
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

/// The calibrated output range of every requantizing node, by ONNX tensor name.
fn calibration(
    graph: &graph::FloatGraph,
    calib: &mut dyn Calibrate,
) -> Result<std::collections::HashMap<String, (f32, f32)>, QuantizeError> {
    let mut names: Vec<&str> = graph
        .nodes
        .iter()
        .filter(|n| n.op.requantizes())
        .map(|n| n.calibrate.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    let ranges = calib.ranges(&names).map_err(QuantizeError::Calibration)?;
    if ranges.len() != names.len() {
        return Err(QuantizeError::Calibration(format!(
            "{} ranges for {} tensors",
            ranges.len(),
            names.len()
        )));
    }
    Ok(names.iter().map(|n| n.to_string()).zip(ranges).collect())
}
