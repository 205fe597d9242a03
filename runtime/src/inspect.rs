//! What an ONNX model is made of, and whether Ember's int8 firmware op set covers it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::classifier::Classifier;

/// Operators the int8 quantizer accepts (DESIGN.md): layers it maps onto firmware kernels,
/// operators it folds away, and shape arithmetic that constant folding removes.
pub const FIRMWARE_OPS: &[&str] = &[
    "Conv",
    "Relu",
    "Clip",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Flatten",
    "Reshape",
    "Gemm",
    "MatMul",
    "Add",
    "BatchNormalization",
    "Dropout",
    "Identity",
    "Softmax",
    "Shape",
    "Gather",
    "Concat",
    "Unsqueeze",
    "Squeeze",
    "Constant",
    "Cast",
    "Transpose",
];

/// A description of a model.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// File.
    pub model: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Producer recorded in the file.
    pub producer: String,
    /// Opset versions by domain.
    pub opsets: Vec<(String, i64)>,
    /// Input layout detected.
    pub layout: String,
    /// Whether outputs are logits or probabilities.
    pub scores: String,
    /// Input value = pixel × scale + offset.
    pub pixel_scale: f32,
    /// See `pixel_scale`.
    pub pixel_offset: f32,
    /// Number of each operator.
    pub operators: BTreeMap<String, usize>,
    /// Parameters (elements of all initializers).
    pub parameters: u64,
    /// Operators outside the firmware's op set.
    pub unsupported_by_firmware: Vec<String>,
    /// Metadata properties.
    pub metadata: BTreeMap<String, String>,
}

/// Inspects a loaded classifier.
pub fn inspect(c: &Classifier) -> Inspection {
    let graph = c.proto.graph.clone().unwrap_or_default();
    let mut operators = BTreeMap::new();
    for node in &graph.node {
        *operators.entry(node.op_type.clone()).or_insert(0) += 1;
    }
    let parameters = graph
        .initializer
        .iter()
        .map(|t| t.dims.iter().product::<i64>().max(0) as u64)
        .sum();
    let unsupported_by_firmware = operators
        .keys()
        .filter(|op| !FIRMWARE_OPS.contains(&op.as_str()))
        .cloned()
        .collect();
    Inspection {
        model: c.path().display().to_string(),
        sha256: c.sha256.clone(),
        producer: format!("{} {}", c.proto.producer_name, c.proto.producer_version)
            .trim()
            .to_string(),
        opsets: c
            .proto
            .opset_import
            .iter()
            .map(|o| (o.domain.clone(), o.version))
            .collect(),
        layout: format!("{:?} {:?}", c.layout, c.layout.shape(1)).replace("[1,", "[N,"),
        scores: format!("{:?}", c.scores),
        pixel_scale: c.pixel_scale,
        pixel_offset: c.pixel_offset,
        operators,
        parameters,
        unsupported_by_firmware,
        metadata: c
            .proto
            .metadata_props
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect(),
    }
}

impl Inspection {
    /// Human-readable form.
    pub fn text(&self) -> String {
        let ops: Vec<String> = self
            .operators
            .iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect();
        let opsets: Vec<String> = self
            .opsets
            .iter()
            .map(|(d, v)| format!("{}{v}", if d.is_empty() { "ai.onnx " } else { d }))
            .collect();
        let firmware = if self.unsupported_by_firmware.is_empty() {
            "yes: every operator is in Ember's int8 op set".to_string()
        } else {
            format!(
                "no: {} outside Ember's int8 op set",
                self.unsupported_by_firmware.join(", ")
            )
        };
        let mut out = format!(
            "model       {}\nsha256      {}\nproducer    {}\nopset       {}\ninput       {}, value = pixel × {} + {}\noutput      [N,10] {}\noperators   {}\nparameters  {}\nfirmware    {}\n",
            self.model,
            self.sha256,
            self.producer,
            opsets.join(", "),
            self.layout,
            self.pixel_scale,
            self.pixel_offset,
            self.scores.to_lowercase(),
            ops.join(", "),
            self.parameters,
            firmware
        );
        for (k, v) in &self.metadata {
            out += &format!("metadata    {k} = {v}\n");
        }
        out
    }
}
