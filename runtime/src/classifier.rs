//! An ONNX digit classifier loaded with tract: its input layout, its output kind and its pixel
//! scaling, discovered from the file, and optimized plans per batch size.

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use card::{argmax, sha256_hex};
use mnist::{CLASSES, PIXELS};

use crate::contain::contain;
use crate::convention::Convention;
use prost::Message;
use tract_onnx::pb::{self, ModelProto};
use tract_onnx::prelude::*;

/// The error of loading or running a model: one line naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ModelError {
    /// The model file.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

/// Where the 28×28 pixels sit in the model's input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Layout {
    /// `[N, 1, 28, 28]` (PyTorch, burn).
    Nchw,
    /// `[N, 28, 28, 1]` (Keras through tf2onnx).
    Nhwc,
    /// `[N, 28, 28]`.
    Nhw,
    /// `[N, 784]`.
    Flat,
}

impl Layout {
    /// The input shape for a batch of `n`.
    pub fn shape(self, n: usize) -> Vec<usize> {
        match self {
            Layout::Nchw => vec![n, 1, 28, 28],
            Layout::Nhwc => vec![n, 28, 28, 1],
            Layout::Nhw => vec![n, 28, 28],
            Layout::Flat => vec![n, PIXELS],
        }
    }

    fn detect(dims: &[Option<i64>]) -> Option<Layout> {
        let rest: Vec<Option<i64>> = dims.iter().skip(1).copied().collect();
        let is = |want: &[i64]| {
            rest.len() == want.len()
                && rest
                    .iter()
                    .zip(want)
                    .all(|(d, w)| d.is_none_or(|d| d == *w))
        };
        [
            (Layout::Nchw, &[1, 28, 28][..]),
            (Layout::Nhwc, &[28, 28, 1][..]),
            (Layout::Nhw, &[28, 28][..]),
            (Layout::Flat, &[784][..]),
        ]
        .into_iter()
        .find(|(_, want)| is(want))
        .map(|(layout, _)| layout)
    }
}

/// What the model's 10 outputs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Scores {
    /// Raw logits: softmax gives probabilities.
    Logits,
    /// Probabilities already (the graph ends in Softmax).
    Probabilities,
}

/// A loaded classifier, ready to make plans for any batch size.
pub struct Classifier {
    path: PathBuf,
    model: InferenceModel,
    /// The ONNX protobuf, for inspection.
    pub proto: ModelProto,
    /// Input layout.
    pub layout: Layout,
    /// What the outputs are.
    pub scores: Scores,
    /// Input value = pixel × scale + offset, and who said so.
    pub input: Convention,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// An optimized plan for one batch size.
pub struct Plan {
    runnable: Arc<TypedRunnableModel>,
    batch: usize,
    layout: Layout,
}

impl Classifier {
    /// Loads and checks the ONNX model at `path`.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
        Self::from_bytes(path, &bytes)
    }

    /// Loads and checks a model from its bytes; `path` names it in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, ModelError> {
        let proto =
            ModelProto::decode(bytes).map_err(|e| err(path, format!("not an ONNX model: {e}")))?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| err(path, "ONNX model has no graph".into()))?;
        let layout = input_layout(path, graph)?;
        let scores = match graph.node.last() {
            Some(node) if node.op_type == "Softmax" => Scores::Probabilities,
            _ => Scores::Logits,
        };
        crate::validate::model(&proto).map_err(|e| err(path, e))?;
        let model = contain(|| tract_onnx::onnx().model_for_read(&mut &bytes[..]))
            .map_err(|panic| err(path, format!("tract failed on it: {panic}")))?
            .map_err(|e| err(path, format!("tract cannot load it: {}", one_line(&e))))?;
        let classifier = Classifier {
            path: path.to_path_buf(),
            model,
            layout,
            scores,
            input: Convention::from_metadata(&proto.metadata_props)
                .unwrap_or_else(Convention::default_unit),
            sha256: sha256_hex(bytes),
            proto,
        };
        // Typing a batch-1 plan checks every operator and the output shape once, up front.
        classifier.plan(1)?;
        Ok(classifier)
    }

    /// tract's model as loaded from ONNX, before typing.
    pub fn inference_model(&self) -> &InferenceModel {
        &self.model
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An optimized plan for batches of exactly `batch` images.
    pub fn plan(&self, batch: usize) -> Result<Plan, ModelError> {
        contain(|| self.plan_uncontained(batch))
            .map_err(|panic| err(&self.path, format!("tract failed on it: {panic}")))?
    }

    fn plan_uncontained(&self, batch: usize) -> Result<Plan, ModelError> {
        let fail = |what: &str, e: TractError| err(&self.path, format!("{what}: {}", one_line(&e)));
        let typed = self
            .model
            .clone()
            .with_input_fact(0, f32::fact(self.layout.shape(batch)).into())
            .and_then(|m| m.into_typed())
            .map_err(|e| fail("tract cannot run it", e))?;
        let output = typed.output_fact(0).map_err(|e| fail("no output", e))?;
        let dims: Option<Vec<usize>> = output.shape.as_concrete().map(|d| d.to_vec());
        if dims.as_deref() != Some(&[batch, CLASSES][..]) {
            return Err(err(
                &self.path,
                format!(
                    "output shape {:?} is not [{batch}, 10]: a digit classifier has 10 scores",
                    output.shape
                ),
            ));
        }
        let runnable = crate::max_pool::replace_max_pools(typed)
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| fail("tract cannot optimize it", e))?;
        Ok(Plan {
            runnable,
            batch,
            layout: self.layout,
        })
    }

    /// The model input for `pixels` (0 = background, 255 = ink), in the model's scaling.
    pub fn scale_pixels(&self, pixels: &[u8]) -> Vec<f32> {
        pixels
            .iter()
            .map(|&p| p as f32 * self.input.scale + self.input.offset)
            .collect()
    }

    /// Probabilities from the model's raw outputs.
    pub fn probabilities(&self, outputs: &[f32]) -> Vec<f32> {
        match self.scores {
            Scores::Probabilities => outputs.to_vec(),
            Scores::Logits => softmax(outputs),
        }
    }
}

impl Plan {
    /// Batch size of this plan.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Runs the plan on `inputs` (`batch × 784` scaled pixels, row-major); returns `batch × 10`.
    pub fn run(&self, inputs: Vec<f32>) -> TractResult<Vec<f32>> {
        let tensor = Tensor::from_shape(&self.layout.shape(self.batch), &inputs)?;
        let out = contain(|| self.runnable.run(tvec!(tensor.into())))
            .map_err(|panic| anyhow::anyhow!("tract failed: {panic}"))??;
        Ok(out[0]
            .to_plain_array_view::<f32>()?
            .iter()
            .copied()
            .collect())
    }

    /// A reusable state for repeated runs (what the latency benchmark measures).
    pub fn state(&self) -> TractResult<TypedSimpleState> {
        self.runnable.spawn()
    }

    /// The input tensor for `inputs` in this plan's layout.
    pub fn tensor(&self, inputs: &[f32]) -> TractResult<TValue> {
        Ok(Tensor::from_shape(&self.layout.shape(self.batch), inputs)?.into())
    }
}

fn input_layout(path: &Path, graph: &pb::GraphProto) -> Result<Layout, ModelError> {
    let initializers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .collect();
    if inputs.len() != 1 {
        return Err(err(
            path,
            format!(
                "has {} inputs; a digit classifier has one (the image)",
                inputs.len()
            ),
        ));
    }
    let dims: Vec<Option<i64>> = match inputs[0].r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => t
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) => Some(v),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    Layout::detect(&dims).ok_or_else(|| {
        let shown: Vec<String> = dims.iter().map(|d| d.map_or("?".into(), |v| v.to_string())).collect();
        err(
            path,
            format!(
                "input shape [{}] is not one 28×28 grey image per batch item ([N,1,28,28], [N,28,28,1], [N,28,28] or [N,784])",
                shown.join(",")
            ),
        )
    })
}

fn err(path: &Path, reason: String) -> ModelError {
    ModelError {
        path: path.display().to_string(),
        reason,
    }
}

/// An error chain on one line.
pub fn one_line(e: &TractError) -> String {
    format!("{e:#}").replace('\n', " ")
}

/// Softmax of `logits`, computed stably.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}
