//! The model card: one type for what Ember knows about a model, written by `trainer export`
//! (architecture, training, test accuracy), `runtime quantize` (the int8 figures) and
//! `firmware-report` (the firmware's figures per core), and read by the tests. It also holds
//! the two helpers every stage uses to name a model and read its answer: [`sha256_hex`] and
//! [`argmax`].
//!
//! The card describes a model, not a run: it holds nothing that changes from one run to the
//! next (timings live in the run's own `run.json`), so regenerating a model gives the same card.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A model card (`models/NAME.json` beside `models/NAME.onnx`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Model name: the ONNX file's stem.
    pub name: String,
    /// The ONNX file's name.
    pub onnx: String,
    /// sha256 of the ONNX file, in hex: the model's identity.
    pub onnx_sha256: String,
    /// Architecture name in the trainer's zoo.
    pub arch: String,
    /// One line per layer, as `trainer summary` prints them.
    pub layers: Vec<String>,
    /// Trainable parameters.
    pub parameters: u64,
    /// Multiply-accumulates per inference.
    pub macs: u64,
    /// The input convention in words.
    pub input: String,
    /// The value fed for a pixel p (0..255) is `p × pixel_scale + pixel_offset`.
    pub pixel_scale: f64,
    /// See `pixel_scale`.
    pub pixel_offset: f64,
    /// How the model was trained.
    pub training: Training,
    /// Accuracy on the MNIST test set, rounded to 4 decimals.
    pub test_accuracy: f64,
    /// Test images it was measured on.
    pub test_images: u64,
    /// The int8 model's figures (`runtime quantize`), once quantized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8: Option<Int8>,
    /// The firmware's figures per target triple (`firmware-report`), once measured.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub firmware: BTreeMap<String, Firmware>,
}

/// How a model was trained: the settings that reproduce it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Training {
    /// Framework and backend.
    pub framework: String,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Optimizer and schedule.
    pub optimizer: String,
    /// Seed of the initialisation, the data order and the augmentation.
    pub seed: u64,
    /// Training images.
    pub train_images: usize,
    /// The on-the-fly augmentation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augment: Option<String>,
}

/// The int8 model's figures, as `runtime quantize` measured them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Int8 {
    /// The generated Rust file.
    pub output: String,
    /// Calibration images (training set).
    pub calibration_images: usize,
    /// Seed of the calibration sample.
    pub seed: u64,
    /// Parameters.
    pub params: u64,
    /// Multiply-accumulates per inference.
    pub macs: u64,
    /// Bytes of weights, biases and requantization constants.
    pub weight_bytes: u64,
    /// Activation arena, bytes.
    pub arena_bytes: u64,
    /// Float accuracy on the test images.
    pub float_accuracy: f64,
    /// int8 accuracy on the same images, through the firmware's kernels.
    pub int8_accuracy: f64,
    /// Share of images where float and int8 agree.
    pub agreement: f64,
}

/// The firmware's figures on one core, as `firmware-report` measured them in QEMU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firmware {
    /// Target triple.
    pub target: String,
    /// QEMU machine.
    pub qemu_machine: String,
    /// ELF section sizes, bytes.
    pub text: u64,
    /// See `text`.
    pub rodata: u64,
    /// See `text`.
    pub data: u64,
    /// See `text`.
    pub bss: u64,
    /// Test digits embedded in the image.
    pub embedded_digits: u64,
    /// Bytes those digits take.
    pub digit_bytes: u64,
    /// text + rodata + data without the digits.
    pub flash_without_digits: u64,
    /// data + bss + stack high-water mark.
    pub ram: u64,
    /// Deepest stack seen, bytes.
    pub stack_high_water: u64,
    /// Instructions per inference.
    pub instructions_per_inference: u64,
    /// Instructions per layer.
    pub layers: Vec<LayerCost>,
    /// "right/total" over the embedded digits.
    pub accuracy_on_embedded_digits: String,
}

/// One layer's cost on a core: its instructions, or the layer it is fused into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerCost {
    /// The layer, as the firmware names it.
    pub layer: String,
    /// Instructions it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<u64>,
    /// The layer that computes it as part of its own work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fused_into: Option<usize>,
}

/// Why a card cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The card's path.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a model card.
    #[error("{path}: not a model card: {source}")]
    Parse {
        /// The card's path.
        path: String,
        /// What is wrong.
        source: serde_json::Error,
    },
}

impl ModelCard {
    /// Reads the card at `path`; `None` when there is no file.
    pub fn read(path: &Path) -> Result<Option<ModelCard>, CardError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io(path, source)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| CardError::Parse {
                path: path.display().to_string(),
                source,
            })
    }

    /// The card as pretty JSON with a final newline, as it is written.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a card always serializes") + "\n"
    }

    /// Writes the card to `path`, leaving the file untouched when its bytes would not change.
    pub fn write(&self, path: &Path) -> Result<(), CardError> {
        let json = self.to_json();
        if std::fs::read(path).is_ok_and(|old| old == json.as_bytes()) {
            return Ok(());
        }
        std::fs::write(path, json).map_err(|source| io(path, source))
    }

    /// The card at `path` for the model with `onnx_sha256`, if there is one for that model.
    pub fn read_for(path: &Path, onnx_sha256: &str) -> Result<Option<ModelCard>, CardError> {
        Ok(Self::read(path)?.filter(|c| c.onnx_sha256 == onnx_sha256))
    }
}

fn io(path: &Path, source: std::io::Error) -> CardError {
    CardError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// sha256 of `bytes` in lower-case hex: how Ember names a model file.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Index of the largest score (the first on ties; NaN never wins): the class a model answers.
pub fn argmax<T: PartialOrd + Copy>(scores: &[T]) -> usize {
    let mut best: Option<usize> = None;
    for (i, &v) in scores.iter().enumerate() {
        let comparable = v.partial_cmp(&v).is_some();
        if comparable && best.is_none_or(|b| v > scores[b]) {
            best = Some(i);
        }
    }
    best.unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_largest_and_skips_nan() {
        assert_eq!(argmax(&[1.0f32, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0, 0.5]), 1);
        assert_eq!(argmax(&[-5i8, -1, -3]), 1);
        assert_eq!(argmax::<f32>(&[]), 0);
    }

    #[test]
    fn sha256_is_the_standard_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_committed_card_reads_and_writes_back_the_same_bytes() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/mnist_cnn.json");
        let card = ModelCard::read(&path).unwrap().expect("the committed card");
        assert_eq!(card.to_json(), std::fs::read_to_string(&path).unwrap());
        assert!(ModelCard::read(Path::new("/nonexistent/card.json"))
            .unwrap()
            .is_none());
    }
}
