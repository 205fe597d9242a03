//! ONNX export: the network with a dynamic batch axis, and the input convention written into
//! the file's metadata so that any runtime can feed it correctly.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use burn::tensor::{Device, Tensor};
use burn_onnx::export::{AxisSpec, InputSpec, OnnxExporter};
use prost::Message;
use tract_onnx::pb::{ModelProto, StringStringEntryProto};

use crate::model::{Arch, Net};

/// How pixels become the model's input: `x = pixel * PIXEL_SCALE + PIXEL_OFFSET`, NCHW,
/// white ink on black as in MNIST.
pub const PIXEL_SCALE: f32 = 1.0 / 255.0;
/// See [`PIXEL_SCALE`].
pub const PIXEL_OFFSET: f32 = 0.0;
/// The input convention in words, as recorded in the ONNX metadata and the model card.
pub const INPUT_CONVENTION: &str =
    "float32 [N,1,28,28], pixel/255 in [0,1], white digit on black background, MNIST framing (20x20 box centred by mass in 28x28)";

/// The ONNX bytes of `model`, with a dynamic batch axis and Ember's metadata.
pub fn onnx_bytes(model: &Net, arch: Arch) -> anyhow::Result<Vec<u8>> {
    let device = Device::flex();
    let one = Tensor::<4>::zeros([1, 1, 28, 28], &device);
    let three = Tensor::<4>::zeros([3, 1, 28, 28], &device);
    let spec = InputSpec::new([
        AxisSpec::dynamic("batch"),
        AxisSpec::Static,
        AxisSpec::Static,
        AxisSpec::Static,
    ]);
    let onnx = OnnxExporter::new()
        .export_dynamic(model, one, three, &[spec], Net::forward)
        .context("burn-onnx could not export the network")?;
    let mut proto =
        ModelProto::decode(onnx.as_bytes()).context("burn-onnx wrote ONNX that does not decode")?;
    canonical_names(&mut proto);
    proto.producer_name = "ember-trainer".into();
    proto.producer_version = env!("CARGO_PKG_VERSION").into();
    proto.doc_string = format!(
        "Ember MNIST digit classifier ({}). Input: {INPUT_CONVENTION}.",
        arch.name()
    );
    let meta = [
        ("ember.arch", arch.name().to_string()),
        ("ember.input", INPUT_CONVENTION.to_string()),
        ("ember.pixel_scale", format!("{PIXEL_SCALE:e}")),
        ("ember.pixel_offset", format!("{PIXEL_OFFSET}")),
        ("ember.classes", "0,1,2,3,4,5,6,7,8,9".to_string()),
        ("ember.output", "logits".to_string()),
    ];
    proto.metadata_props = meta
        .into_iter()
        .map(|(key, value)| StringStringEntryProto {
            key: key.into(),
            value,
        })
        .collect();
    Ok(proto.encode_to_vec())
}

/// Renames burn's traced tensors (`tensor_<id>`, numbered by a process-wide counter) in
/// order of first appearance, so that exporting the same model always gives the same bytes.
fn canonical_names(proto: &mut ModelProto) {
    let Some(graph) = proto.graph.as_mut() else {
        return;
    };
    let mut names: HashMap<String, String> = HashMap::new();
    let mut rename = |name: &mut String| {
        if name.starts_with("tensor_") {
            let next = format!("t{}", names.len());
            *name = names.entry(name.clone()).or_insert(next).clone();
        }
    };
    for value in graph.input.iter_mut() {
        rename(&mut value.name);
    }
    for node in graph.node.iter_mut() {
        node.input
            .iter_mut()
            .chain(node.output.iter_mut())
            .for_each(&mut rename);
    }
    for value in graph.output.iter_mut().chain(graph.value_info.iter_mut()) {
        rename(&mut value.name);
    }
    for tensor in graph.initializer.iter_mut() {
        rename(&mut tensor.name);
    }
}

/// Writes `bytes` to `path`, naming the path on failure.
pub fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("{}: cannot write", path.display()))
}
