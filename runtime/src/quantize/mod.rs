//! `runtime quantize`: an ONNX CNN compiled to Ember's int8 firmware model.
//!
//! The scheme is TensorFlow Lite's (see the `firmware` crate): ranges of activations are
//! calibrated through the float graph in tract on training images, weights are quantized
//! symmetric per output channel, biases to int32, and each layer gets Q31 multipliers.

pub mod codegen;
pub mod graph;

use firmware::requant::quantize_multiplier;
use firmware::{Conv, FullyConnected, Layer, Model, Pool, PoolKind, Shape};
use mnist::{Dataset, PIXELS};
use tract_onnx::prelude::*;

use crate::classifier::{one_line, Classifier};
use graph::{Act, FloatLayer};

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

/// An owned int8 layer (the firmware's layer types borrow from these).
#[derive(Debug, Clone)]
pub enum QLayer {
    /// Convolution.
    Conv {
        /// Geometry and quantization (slices empty; see `weights` etc.).
        spec: ConvSpec,
        /// `[oc][kh][kw][ic]`.
        weights: Vec<i8>,
        /// int32 bias.
        bias: Vec<i32>,
        /// Q31 multipliers.
        multiplier: Vec<i32>,
        /// Shifts.
        shift: Vec<i8>,
    },
    /// Pooling.
    Pool(Pool),
    /// Fully connected.
    Dense {
        /// Geometry and quantization.
        spec: DenseSpec,
        /// `[out][in]` with inputs in HWC order.
        weights: Vec<i8>,
        /// int32 bias.
        bias: Vec<i32>,
        /// Q31 multipliers.
        multiplier: Vec<i32>,
        /// Shifts.
        shift: Vec<i8>,
    },
}

/// Convolution geometry and zero points.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    /// Input shape.
    pub input: Shape,
    /// Output shape.
    pub output: Shape,
    /// Kernel.
    pub kernel: (u8, u8),
    /// Stride.
    pub stride: (u8, u8),
    /// Padding before.
    pub padding: (u8, u8),
    /// Input zero point.
    pub input_zero_point: i8,
    /// Output zero point.
    pub output_zero_point: i8,
    /// Clamp low.
    pub act_min: i8,
    /// Clamp high.
    pub act_max: i8,
}

/// Fully connected geometry and zero points.
#[derive(Debug, Clone, Copy)]
pub struct DenseSpec {
    /// Inputs.
    pub inputs: u16,
    /// Outputs.
    pub outputs: u16,
    /// Input zero point.
    pub input_zero_point: i8,
    /// Output zero point.
    pub output_zero_point: i8,
    /// Clamp low.
    pub act_min: i8,
    /// Clamp high.
    pub act_max: i8,
}

/// A quantized model that owns its data.
#[derive(Debug, Clone)]
pub struct QuantModel {
    /// Layers.
    pub layers: Vec<QLayer>,
    /// Input shape.
    pub input: Shape,
    /// Scale of the logits.
    pub output_scale: f32,
    /// Zero point of the logits.
    pub output_zero_point: i8,
    /// Human-readable layer names, aligned with `layers`.
    pub names: Vec<String>,
}

impl QuantModel {
    /// The firmware's view of layer `i`.
    pub fn layer(&self, i: usize) -> Layer<'_> {
        match &self.layers[i] {
            QLayer::Conv {
                spec: s,
                weights,
                bias,
                multiplier,
                shift,
            } => Layer::Conv(Conv {
                input: s.input,
                output: s.output,
                kernel: s.kernel,
                stride: s.stride,
                padding: s.padding,
                weights,
                bias,
                multiplier,
                shift,
                input_zero_point: s.input_zero_point,
                output_zero_point: s.output_zero_point,
                act_min: s.act_min,
                act_max: s.act_max,
            }),
            QLayer::Pool(p) => Layer::Pool(*p),
            QLayer::Dense {
                spec: s,
                weights,
                bias,
                multiplier,
                shift,
            } => Layer::FullyConnected(FullyConnected {
                inputs: s.inputs,
                outputs: s.outputs,
                weights,
                bias,
                multiplier,
                shift,
                input_zero_point: s.input_zero_point,
                output_zero_point: s.output_zero_point,
                act_min: s.act_min,
                act_max: s.act_max,
            }),
        }
    }

    /// All layers as the firmware sees them.
    pub fn firmware_layers(&self) -> Vec<Layer<'_>> {
        (0..self.layers.len()).map(|i| self.layer(i)).collect()
    }

    /// The firmware model over `layers` (from [`Self::firmware_layers`]).
    pub fn firmware_model<'a>(&self, layers: &'a [Layer<'a>]) -> Model<'a> {
        let mut model = Model {
            layers,
            input: self.input,
            input_zero_point: -128,
            output_scale: self.output_scale,
            output_zero_point: self.output_zero_point,
            arena_bytes: 0,
        };
        model.arena_bytes = model.arena_needed();
        model
    }

    /// Bytes of weights, biases, multipliers and shifts (what goes to flash).
    pub fn weight_bytes(&self) -> usize {
        self.firmware_layers()
            .iter()
            .map(|l| l.weight_bytes())
            .sum()
    }
}

/// Runs the int8 model on every image of `ds` through the firmware kernels; returns the int8
/// logits, 10 per image.
pub fn simulate(q: &QuantModel, ds: &Dataset) -> Vec<[i8; 10]> {
    let layers = q.firmware_layers();
    let model = q.firmware_model(&layers);
    let mut arena = vec![0i8; model.arena_bytes];
    (0..ds.len())
        .map(|i| {
            firmware::run(&model, ds.image(i), &mut arena)
                .map(|o| o.logits)
                .unwrap_or([0; 10])
        })
        .collect()
}

/// The classifier's graph read as the int8 compiler reads it.
fn chain(c: &Classifier) -> Result<graph::Chain, String> {
    let graph = c.proto.graph.as_ref().ok_or("no graph")?;
    let input_name = graph
        .input
        .iter()
        .find(|i| !graph.initializer.iter().any(|t| t.name == i.name))
        .ok_or("no input")?;
    graph::read(graph, &input_name.name)
}

/// Why the int8 compiler refuses the classifier (naming the node and operator), if it does.
pub fn refusal(c: &Classifier) -> Option<String> {
    crate::contain::contain(|| chain(c))
        .map_err(|panic| format!("the quantizer failed on it: {panic}"))
        .and_then(|r| r)
        .err()
}

/// Quantizes the classifier's graph, calibrating on `calib` (training images).
pub fn quantize(c: &Classifier, calib: &Dataset) -> Result<QuantModel, String> {
    crate::contain::contain(|| quantize_uncontained(c, calib))
        .map_err(|panic| format!("the quantizer failed on it: {panic}"))?
}

fn quantize_uncontained(c: &Classifier, calib: &Dataset) -> Result<QuantModel, String> {
    let chain = chain(c)?;
    let ranges = calibrate(c, &chain.layers, calib)?;
    let mut shape = Shape { h: 28, w: 28, c: 1 };
    let mut flat: Option<Shape> = None; // the HWC shape before the flatten, for permuting weights
    let zp_in = (-128.0 - c.input.offset / c.input.scale)
        .round()
        .clamp(-128.0, 127.0) as i8;
    let mut qin = QParams {
        scale: c.input.scale,
        zero_point: zp_in,
    };
    let (mut layers, mut names, mut next_range) = (Vec::new(), Vec::new(), ranges.into_iter());
    for layer in &chain.layers {
        match layer {
            FloatLayer::Conv {
                weights,
                bias,
                out_c,
                kernel,
                stride,
                pad,
                act,
                ..
            } => {
                let (lo, hi) = next_range.next().ok_or("missing calibration")?;
                let qout = QParams::from_range(lo.max(act.lo), hi.min(act.hi));
                let out = Shape {
                    h: out_side(shape.h, kernel.0, stride.0, pad.0, pad.0, false)?,
                    w: out_side(shape.w, kernel.1, stride.1, pad.1, pad.1, false)?,
                    c: *out_c as u16,
                };
                let ic = shape.c as usize;
                if weights.len() != out_c * ic * kernel.0 * kernel.1 {
                    return Err(format!("conv weights do not match {ic} input channels"));
                }
                // ONNX [oc][ic][kh][kw] → firmware [oc][kh][kw][ic].
                let hwc: Vec<f32> = (0..*out_c)
                    .flat_map(|o| {
                        (0..kernel.0).flat_map(move |y| {
                            (0..kernel.1).flat_map(move |x| {
                                (0..ic).map(move |i| ((o * ic + i) * kernel.0 + y) * kernel.1 + x)
                            })
                        })
                    })
                    .map(|i| weights[i])
                    .collect();
                let (w, b, m, s) = quantize_weights(&hwc, bias, *out_c, qin, qout);
                let (act_min, act_max) = qout.clamp(*act);
                names.push(format!("conv {}→{} {}×{}", ic, out_c, kernel.0, kernel.1));
                let spec = ConvSpec {
                    input: shape,
                    output: out,
                    kernel: (kernel.0 as u8, kernel.1 as u8),
                    stride: (stride.0 as u8, stride.1 as u8),
                    padding: (pad.0 as u8, pad.1 as u8),
                    input_zero_point: qin.zero_point,
                    output_zero_point: qout.zero_point,
                    act_min,
                    act_max,
                };
                layers.push(QLayer::Conv {
                    spec,
                    weights: w,
                    bias: b,
                    multiplier: m,
                    shift: s,
                });
                (shape, qin) = (out, qout);
            }
            FloatLayer::Pool {
                average,
                kernel,
                stride,
                pad,
                pad_end,
                ceil,
                act,
            } => {
                let kernel = if kernel.0 == 0 {
                    (shape.h as usize, shape.w as usize)
                } else {
                    *kernel
                };
                let out = Shape {
                    h: out_side(shape.h, kernel.0, stride.0, pad.0, pad_end.0, *ceil)?,
                    w: out_side(shape.w, kernel.1, stride.1, pad.1, pad_end.1, *ceil)?,
                    c: shape.c,
                };
                let (act_min, act_max) = qin.clamp(*act);
                names.push(format!(
                    "{} {}×{}",
                    if *average { "avgpool" } else { "maxpool" },
                    kernel.0,
                    kernel.1
                ));
                layers.push(QLayer::Pool(Pool {
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
                }));
                shape = out;
            }
            FloatLayer::Flatten { channels_last } => flat = (!channels_last).then_some(shape),
            FloatLayer::Dense {
                weights,
                bias,
                inputs,
                outputs,
                act,
                ..
            } => {
                let (lo, hi) = next_range.next().ok_or("missing calibration")?;
                let qout = QParams::from_range(lo.max(act.lo), hi.min(act.hi));
                if *inputs != shape.len() {
                    return Err(format!(
                        "a dense layer takes {inputs} inputs but receives {}",
                        shape.len()
                    ));
                }
                let permuted = permute_to_hwc(weights, *inputs, *outputs, flat.take());
                let (w, b, m, s) = quantize_weights(&permuted, bias, *outputs, qin, qout);
                let (act_min, act_max) = qout.clamp(*act);
                names.push(format!("dense {inputs}→{outputs}"));
                let spec = DenseSpec {
                    inputs: *inputs as u16,
                    outputs: *outputs as u16,
                    input_zero_point: qin.zero_point,
                    output_zero_point: qout.zero_point,
                    act_min,
                    act_max,
                };
                layers.push(QLayer::Dense {
                    spec,
                    weights: w,
                    bias: b,
                    multiplier: m,
                    shift: s,
                });
                (shape, qin) = (
                    Shape {
                        h: 1,
                        w: 1,
                        c: *outputs as u16,
                    },
                    qout,
                );
            }
        }
    }
    if shape.len() != 10 {
        return Err(format!(
            "the network ends in {} values, not 10 scores",
            shape.len()
        ));
    }
    Ok(QuantModel {
        layers,
        input: Shape { h: 28, w: 28, c: 1 },
        output_scale: qin.scale,
        output_zero_point: qin.zero_point,
        names,
    })
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

/// Min and max of each Conv/Dense output over the calibration images, through tract.
fn calibrate(
    c: &Classifier,
    layers: &[FloatLayer],
    calib: &Dataset,
) -> Result<Vec<(f32, f32)>, String> {
    let names: Vec<&str> = layers
        .iter()
        .filter_map(|l| match l {
            FloatLayer::Conv { output, .. } | FloatLayer::Dense { output, .. } => {
                Some(output.as_str())
            }
            _ => None,
        })
        .collect();
    let fail = |e: TractError| format!("calibration through tract failed: {}", one_line(&e));
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
                .ok_or_else(|| format!("calibration: tensor {n:?} not found in tract's graph"))
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
    Ok(ranges)
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
    let int8: Vec<u8> = simulate(q, ds)
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
