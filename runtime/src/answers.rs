//! One framed picture's answer from each of the three ways Ember can run the network: float
//! through tract, int8 through the firmware's kernels on the host, and int8 on a device.

use std::path::Path;

use mnist::PIXELS;

use crate::classifier::{argmax, one_line, softmax, Classifier};
use crate::device::Device;
use crate::quantize;

/// What one way of running the network made of one picture.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Class probabilities.
    pub probabilities: Vec<f32>,
    /// The predicted digit.
    pub digit: usize,
    /// The int8 logits (int8 paths only).
    pub logits: Option<[i8; 10]>,
    /// Instructions the inference took on the device (device only).
    pub instructions: Option<u32>,
}

impl Answer {
    fn new(probabilities: Vec<f32>, logits: Option<[i8; 10]>, instructions: Option<u32>) -> Self {
        Self {
            digit: argmax(&probabilities),
            probabilities,
            logits,
            instructions,
        }
    }
}

/// Float answers through tract, one batch.
pub fn float(classifier: &Classifier, images: &[&[u8; PIXELS]]) -> anyhow::Result<Vec<Answer>> {
    if images.is_empty() {
        return Ok(Vec::new());
    }
    let pixels: Vec<u8> = images.iter().flat_map(|p| p.iter().copied()).collect();
    let outputs = classifier
        .plan(images.len())?
        .run(classifier.scale_pixels(&pixels))
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: inference failed: {}",
                classifier.path().display(),
                one_line(&e)
            )
        })?;
    Ok(outputs
        .chunks_exact(10)
        .map(|row| Answer::new(classifier.probabilities(row), None, None))
        .collect())
}

/// Int8 answers through the firmware's kernels on the host. The model is the committed int8
/// model when it was quantized from this very ONNX (what the firmware embeds), else the ONNX
/// quantized with the defaults, calibrated on the MNIST found from `data`.
pub fn host_int8(
    classifier: &Classifier,
    data: Option<&Path>,
    images: &[&[u8; PIXELS]],
) -> anyhow::Result<Vec<Answer>> {
    if images.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(model) = crate::embedded::int8_model(&classifier.sha256) {
        return run_int8(model, images);
    }
    let q = quantize::quantize_mnist(
        classifier,
        &mnist::data_dir(data)?,
        quantize::DEFAULT_CALIB_COUNT,
        quantize::DEFAULT_CALIB_SEED,
    )?;
    let layers = q.firmware_layers();
    run_int8(&q.firmware_model(&layers), images)
}

fn run_int8(model: &firmware::Model, images: &[&[u8; PIXELS]]) -> anyhow::Result<Vec<Answer>> {
    let mut arena = vec![0i8; model.arena_bytes];
    images
        .iter()
        .map(|image| {
            let out = firmware::run(model, &image[..], &mut arena)
                .map_err(|e| anyhow::anyhow!("int8 model: {e:?}"))?;
            Ok(Answer::new(softmax(&out.scores), Some(out.logits), None))
        })
        .collect()
}

/// Answers from a device, one request per picture.
pub fn device(device: &mut Device, images: &[&[u8; PIXELS]]) -> anyhow::Result<Vec<Answer>> {
    images
        .iter()
        .map(|image| {
            let c = device.classify(&image[..])?;
            let scores = device.info.scores(&c.logits);
            Ok(Answer::new(
                softmax(&scores),
                Some(c.logits),
                Some(c.instructions),
            ))
        })
        .collect()
}

/// Refuses a device whose model is not the classifier's ONNX file: its answers would not be
/// the ones the desktop paths give.
pub fn check_model(device: &Device, classifier: &Classifier) -> anyhow::Result<()> {
    if classifier.sha256 != device.info.model_sha256 {
        anyhow::bail!(
            "{} runs model {}…, but {} is {}…: flash the firmware built from it, or pass the \
             model the device runs with --model",
            device.name(),
            device
                .info
                .model_sha256
                .get(..16)
                .unwrap_or(&device.info.model_sha256),
            classifier.path().display(),
            classifier.sha256.get(..16).unwrap_or(&classifier.sha256)
        );
    }
    Ok(())
}
