//! Hand-built ONNX for the tests: value infos, tensors, nodes, and a real (weak) classifier's
//! weights, so that models no exporter of ours wrote can be made on the spot.

// Each test file that includes this module uses a different part of it.
#![allow(dead_code)]

use std::path::PathBuf;

pub mod graphs;

use mnist::{Split, PIXELS};
use prost::Message;
use tract_onnx::pb::{
    self, tensor_shape_proto::dimension::Value as Dim, type_proto, AttributeProto, GraphProto,
    ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

/// The workspace's MNIST.
pub fn data_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist")
}

/// A float tensor's name and dims (`None`: the batch, `N`).
pub fn value(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| pb::tensor_shape_proto::Dimension {
            value: Some(d.map_or(Dim::DimParam("N".into()), Dim::DimValue)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: 1,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A float initializer.
pub fn floats(name: &str, dims: &[i64], data: Vec<f32>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: data,
        ..Default::default()
    }
}

/// A 1-D int64 initializer.
pub fn ints(name: &str, data: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![data.len() as i64],
        data_type: 7,
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

/// An integer attribute.
pub fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 2,
        i,
        ..Default::default()
    }
}

/// A list-of-integers attribute.
pub fn ints_attr(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

/// `graph` as an ONNX file of the default domain at `opset`, written by `producer`.
pub fn encode(graph: GraphProto, producer: &str, opset: i64) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        producer_name: producer.into(),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

/// An initializer's dims and values, from float_data or little-endian raw_data.
pub fn initializer(proto: &ModelProto, name: &str) -> (Vec<i64>, Vec<f32>) {
    let t = proto
        .graph
        .as_ref()
        .unwrap()
        .initializer
        .iter()
        .find(|t| t.name == name)
        .unwrap();
    let v = if t.float_data.is_empty() {
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        t.float_data.clone()
    };
    (t.dims.clone(), v)
}

/// A node with one output.
pub fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: format!("{op}_{output}"),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

/// Class-mean templates from 5,000 training digits: a weak but real classifier.
pub fn templates() -> (Vec<f32>, Vec<f32>) {
    static TEMPLATES: std::sync::OnceLock<(Vec<f32>, Vec<f32>)> = std::sync::OnceLock::new();
    TEMPLATES.get_or_init(compute_templates).clone()
}

fn compute_templates() -> (Vec<f32>, Vec<f32>) {
    let train = mnist::load(&data_dir(), Split::Train).unwrap().take(5000);
    let mut sums = vec![0f32; 10 * PIXELS];
    let mut counts = [0f32; 10];
    for i in 0..train.len() {
        let c = train.label(i) as usize;
        counts[c] += 1.0;
        for (p, &v) in train.image(i).iter().enumerate() {
            sums[c * PIXELS + p] += v as f32 / 255.0;
        }
    }
    let mut w = vec![0f32; PIXELS * 10];
    let mut b = vec![0f32; 10];
    for c in 0..10 {
        for p in 0..PIXELS {
            let mean = sums[c * PIXELS + p] / counts[c];
            w[p * 10 + c] = mean;
            b[c] -= 0.5 * mean * mean;
        }
    }
    (w, b)
}

/// The template classifier's ten scores for raw pixels, computed directly.
pub fn template_scores(pixels: &[u8]) -> Vec<f32> {
    let (w, b) = templates();
    (0..10)
        .map(|c| {
            b[c] + pixels
                .iter()
                .enumerate()
                .map(|(p, &v)| v as f32 / 255.0 * w[p * 10 + c])
                .sum::<f32>()
        })
        .collect()
}
