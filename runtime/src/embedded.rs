//! What `runtime` carries inside its binary, so that an installed `runtime` works from any
//! folder: Ember's committed model (ONNX, card and model file) and the firmware for each core
//! (the inference service), built by `build.rs`.

use std::path::Path;

use crate::classifier::{Classifier, ModelError};

/// How the embedded model is named in messages and reports.
pub const NAME: &str = "mnist_cnn.onnx (embedded in runtime)";
/// The committed ONNX model.
pub static ONNX: &[u8] = include_bytes!("../models/mnist_cnn.onnx");
/// Its model card.
pub static CARD: &str = include_str!("../models/mnist_cnn.json");

/// The committed model file, quantized from [`ONNX`].
pub static INT8: &[u8] = include_bytes!("../models/mnist_cnn.int8");
/// How the committed model file is named in messages.
pub const INT8_NAME: &str = "mnist_cnn.int8 (embedded in runtime)";

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

/// The committed model file, for the ONNX with this SHA-256: `None` unless it was quantized
/// from exactly that file.
pub fn int8_file(onnx_sha256: &str) -> Option<anyhow::Result<crate::answers::Int8File>> {
    match crate::answers::Int8File::from_bytes(INT8_NAME.into(), INT8) {
        Ok(file) => (file.sha256 == onnx_sha256).then_some(Ok(file)),
        Err(e) => Some(Err(e)),
    }
}

/// The inference service's ELF for the board named `name` (`m0`, `m3`, `m4`, `m7`, `m33`), if
/// this binary was built with the board's target installed.
pub fn service_elf(name: &str) -> Option<&'static [u8]> {
    let elf: &'static [u8] = match name {
        "m0" => include_bytes!(concat!(env!("OUT_DIR"), "/serve-m0.elf")),
        "m3" => include_bytes!(concat!(env!("OUT_DIR"), "/serve-m3.elf")),
        "m4" => include_bytes!(concat!(env!("OUT_DIR"), "/serve-m4.elf")),
        "m7" => include_bytes!(concat!(env!("OUT_DIR"), "/serve-m7.elf")),
        "m33" => include_bytes!(concat!(env!("OUT_DIR"), "/serve-m33.elf")),
        _ => &[],
    };
    (!elf.is_empty()).then_some(elf)
}
