//! Graph models built on the spot from the committed CNN's weights, so that branches, depthwise
//! and grouped convolutions, a BatchNorm after a depthwise one, Relu6, Add, average pooling with
//! padding and Concat are tried on an accurate float model.

use std::path::Path;

use prost::Message;
use tract_onnx::pb::{self, ModelProto};

use super::{floats, int_attr, ints_attr, node};

/// Deterministic small weights.
fn small(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32 - 0.5) * 2.0 * scale
        })
        .collect()
}

fn clip(input: &str, output: &str, lo: &str, hi: &str) -> pb::NodeProto {
    node("Clip", &[input, lo, hi], output, vec![])
}

/// The committed CNN with a depthwise residual branch and a concatenated pointwise branch
/// before its third convolution.
pub fn branched() -> Vec<u8> {
    let mut proto = ModelProto::decode(
        &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/mnist_cnn.onnx"))
            .unwrap()[..],
    )
    .unwrap();
    let g = proto.graph.as_mut().unwrap();
    let pools: Vec<usize> = (0..g.node.len())
        .filter(|&i| g.node[i].op_type == "MaxPool")
        .collect();
    let p1 = g.node[pools[0]].output[0].clone();
    let p2 = g.node[pools[1]].output[0].clone();
    let conv3 = g
        .node
        .iter()
        .position(|n| n.op_type == "Conv" && n.input[0] == p2)
        .unwrap();
    let w3 = g.node[conv3].input[1].clone();
    // conv3 reads 20 channels: the 16 it had, then 4 it ignores (zero weights).
    let (_, old) = super::initializer(&proto, &w3);
    let widened: Vec<f32> = old
        .chunks_exact(16 * 9)
        .flat_map(|o| o.iter().copied().chain(std::iter::repeat_n(0.0, 4 * 9)))
        .collect();
    let g = proto.graph.as_mut().unwrap();
    let t = g.initializer.iter_mut().find(|t| t.name == w3).unwrap();
    *t = floats(&w3, &[32, 20, 3, 3], widened);
    g.node[conv3].input[0] = "joined".into();
    let branch = vec![
        node(
            "Conv",
            &[&p1, "dw_w", "dw_b"],
            "dw_raw",
            vec![
                int_attr("group", 8),
                ints_attr("strides", &[2, 2]),
                ints_attr("pads", &[1, 1, 1, 1]),
                ints_attr("kernel_shape", &[3, 3]),
            ],
        ),
        node(
            "BatchNormalization",
            &["dw_raw", "bn_g", "bn_b", "bn_m", "bn_v"],
            "dw",
            vec![],
        ),
        clip("dw", "dw6", "zero", "six"),
        node("Add", &[&p2, "dw6"], "residual", vec![]),
        node(
            "Conv",
            &["residual", "pw_w", "pw_b"],
            "pw",
            vec![int_attr("group", 2)],
        ),
        node("Relu", &["pw"], "pw_relu", vec![]),
        node(
            "AveragePool",
            &["pw_relu"],
            "pw_avg",
            vec![
                ints_attr("kernel_shape", &[3, 3]),
                ints_attr("pads", &[1, 1, 1, 1]),
            ],
        ),
        node(
            "Concat",
            &["residual", "pw_avg"],
            "joined",
            vec![int_attr("axis", 1)],
        ),
    ];
    g.node.splice(conv3..conv3, branch);
    g.initializer.extend([
        floats("dw_w", &[16, 1, 3, 3], small(16 * 9, 7, 0.08)),
        floats("dw_b", &[16], small(16, 9, 0.05)),
        floats(
            "bn_g",
            &[16],
            small(16, 15, 0.2).iter().map(|v| 1.0 + v).collect(),
        ),
        floats("bn_b", &[16], small(16, 17, 0.05)),
        floats("bn_m", &[16], small(16, 19, 0.05)),
        floats(
            "bn_v",
            &[16],
            small(16, 21, 0.2).iter().map(|v| 1.0 + v).collect(),
        ),
        floats("pw_w", &[4, 8, 1, 1], small(32, 11, 0.5)),
        floats("pw_b", &[4], small(4, 13, 0.1)),
        floats("zero", &[], vec![0.0]),
        floats("six", &[], vec![6.0]),
    ]);
    proto.encode_to_vec()
}
