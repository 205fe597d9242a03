//! `runtime quantize`: an ONNX CNN compiled to Ember's int8 model by the compiler crate
//! (`ember-compiler`), calibrated here: tract runs the float graph on MNIST training images and
//! reports each activation's range (the compiler's [`compiler::Calibrate`]).

pub use compiler::{graph, Node, QParams, QuantModel, QuantizeError};

use mnist::{Dataset, PIXELS};
use prost::Message;

use tract_onnx::prelude::*;

use crate::classifier::{one_line, Classifier};

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
    // The compiler decodes ONNX itself (it does not depend on tract): hand it the bytes.
    compiler::read(&compiler::decode(&c.proto.encode_to_vec())?)
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
    crate::contain::contain(|| {
        let graph = read_graph(c)?;
        let input = compiler::Input {
            pixel_scale: c.input.scale,
            pixel_offset: c.input.offset,
        };
        compiler::quantize(&graph, input, &mut Tract { c, calib })
    })
    .map_err(QuantizeError::Internal)?
}

/// Calibration through tract: the float graph on a set of images.
struct Tract<'a> {
    c: &'a Classifier,
    calib: &'a Dataset,
}

impl compiler::Calibrate for Tract<'_> {
    fn ranges(&mut self, names: &[&str]) -> Result<Vec<(f32, f32)>, String> {
        ranges(self.c, names, self.calib).map_err(|e| format!("tract failed: {}", one_line(&e)))
    }
}

/// Min and max of each named ONNX tensor over the calibration images, through tract.
fn ranges(c: &Classifier, names: &[&str], calib: &Dataset) -> TractResult<Vec<(f32, f32)>> {
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
                .ok_or_else(|| TractError::msg(format!("tensor {n:?} not found in tract's graph")))
        })
        .collect::<TractResult<_>>()?;
    model.select_output_outlets(&outlets)?;
    let batch = 100.min(calib.len()).max(1);
    let plan = model
        .with_input_fact(0, f32::fact(c.layout.shape(batch)).into())?
        .into_optimized()?
        .into_runnable()?;
    let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); names.len()];
    for start in (0..calib.len() / batch * batch).step_by(batch) {
        let pixels = &calib.pixels()[start * PIXELS..(start + batch) * PIXELS];
        let input = Tensor::from_shape(&c.layout.shape(batch), &c.scale_pixels(pixels))?;
        let outs = plan.run(tvec!(input.into()))?;
        for (range, out) in ranges.iter_mut().zip(outs.iter()) {
            for &v in out.to_plain_array_view::<f32>()?.iter() {
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
