//! What `runtime` carries inside its binary, so that an installed `runtime` works from any
//! folder: Ember's committed model (ONNX, card and int8 model) and the inference service's
//! firmware for each board, built by `build.rs`.

use std::path::Path;

use crate::classifier::{Classifier, ModelError};

/// How the embedded model is named in messages and reports.
pub const NAME: &str = "mnist_cnn.onnx (embedded in runtime)";
/// The committed ONNX model.
pub static ONNX: &[u8] = include_bytes!("../models/mnist_cnn.onnx");
/// Its model card.
pub static CARD: &str = include_str!("../models/mnist_cnn.json");

#[allow(dead_code)]
mod int8 {
    include!("../models/mnist_cnn_int8.rs");
}

/// The model in use: the ONNX file at `path`, or the embedded one when there is none.
pub fn classifier(path: Option<&Path>) -> Result<Classifier, ModelError> {
    match path {
        Some(path) => Classifier::load(path),
        None => Classifier::from_bytes(Path::new(NAME), ONNX),
    }
}

/// Whether `classifier` is the embedded model (or a byte-identical copy of it).
pub fn is_embedded(classifier: &Classifier) -> bool {
    classifier.path() == Path::new(NAME)
}

/// The committed int8 model, which the firmware also embeds, for the ONNX with this SHA-256:
/// `None` unless it was quantized from exactly that file.
pub fn int8_model(onnx_sha256: &str) -> Option<&'static firmware::Model<'static>> {
    (int8::ONNX_SHA256 == onnx_sha256).then_some(&int8::MODEL)
}

/// The inference service's ELF for the board named `m3` or `m4`, if this binary was built with
/// the board's target installed.
pub fn service_elf(board: &str) -> Option<&'static [u8]> {
    let elf: &'static [u8] = match board {
        "m3" => include_bytes!(concat!(env!("OUT_DIR"), "/serve-m3.elf")),
        "m4" => include_bytes!(concat!(env!("OUT_DIR"), "/serve-m4.elf")),
        _ => &[],
    };
    (!elf.is_empty()).then_some(elf)
}
