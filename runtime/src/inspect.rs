//! What an ONNX model is made of, how it is fed, and whether Ember's int8 compiler takes it
//! (the quantizer's own reading of the graph answers, so the two never disagree).

use std::collections::BTreeMap;

use serde::Serialize;

use serde_json::json;

use crate::answers::Int8File;
use crate::classifier::Classifier;
use crate::convention::Convention;
use crate::device::qemu::Fit;
use crate::device::Board;

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
    /// Input value = pixel × scale + offset, and who said so.
    pub input: Convention,
    /// Number of each operator.
    pub operators: BTreeMap<String, usize>,
    /// Parameters (elements of all initializers).
    pub parameters: u64,
    /// Why the int8 compiler refuses the model, if it does.
    pub firmware_refusal: Option<String>,
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
        input: c.input.clone(),
        operators,
        parameters,
        firmware_refusal: crate::quantize::refusal(c).map(|e| e.to_string()),
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
        let firmware = match &self.firmware_refusal {
            None => "yes: Ember's int8 compiler reads every node".to_string(),
            Some(why) => format!("no: {why}"),
        };
        let mut out = format!(
            "model       {}\nsha256      {}\nproducer    {}\nopset       {}\ninput       {}, {}\noutput      [N,10] {}\noperators   {}\nparameters  {}\nfirmware    {}\n",
            self.model,
            self.sha256,
            self.producer,
            opsets.join(", "),
            self.layout,
            self.input.describe(),
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

/// A model file as `inspect --json --model X.int8` reports it: its header, its layers and
/// whether it fits each core.
pub fn file(file: &Int8File) -> anyhow::Result<serde_json::Value> {
    let file_bytes = file.bytes.bytes().len();
    file.bytes
        .with(|f| {
            let (h, m) = (&f.header, &f.model);
            let layers: Vec<serde_json::Value> = m
                .layers
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let s = l.output_shape();
                    json!({"layer": h.layer_name(i).unwrap_or(""), "output": [s.h, s.w, s.c],
                           "macs": l.macs(), "weight_bytes": l.weight_bytes(), "fused": m.fused(i)})
                })
                .collect();
            let records = m.layers.len().max(m.tensors.len());
            let fits: Vec<Fit> = Board::CORES
                .iter()
                .map(|b| b.fit(file_bytes, h.arena_bytes, records))
                .collect();
            json!({"model": file.path, "format_version": h.version, "onnx_sha256": file.sha256,
                   "file_bytes": file_bytes, "input": [h.input.h, h.input.w, h.input.c],
                   "input_convention": {"scale": h.pixel.0, "offset": h.pixel.1},
                   "output": [h.output.h, h.output.w, h.output.c],
                   "output_quantization": {"scale": h.output_quant.0, "zero_point": h.output_quant.1},
                   "arena_bytes": h.arena_bytes, "macs": h.macs, "layers": layers, "fits": fits})
        })
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.path.display()))
}
