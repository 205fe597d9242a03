//! Models Ember did not make: small ONNX classifiers built here in every supported input
//! layout, plus models that do not fit, which must be refused with a clear reason.

use std::path::Path;

mod onnx;

use mnist::{Split, PIXELS};
use onnx::{data_dir, encode, floats, int_attr, ints, node, template_scores, templates, value};
use prost::Message;
use runtime::classifier::{argmax, Classifier, Layout, Scores};
use tract_onnx::pb::{GraphProto, ModelProto};

/// A linear classifier `softmax?(flatten(x) · W + b)` with input dims `input` (batch first).
fn linear_model(
    input: &[Option<i64>],
    w: &[f32],
    b: &[f32],
    classes: i64,
    softmax: bool,
) -> Vec<u8> {
    let mut nodes = vec![
        node("Reshape", &["x", "flat_shape"], "flat", vec![]),
        node("MatMul", &["flat", "w"], "mm", vec![]),
        node("Add", &["mm", "b"], "scores", vec![]),
    ];
    let mut out = "scores";
    if softmax {
        nodes.push(node(
            "Softmax",
            &["scores"],
            "probs",
            vec![int_attr("axis", 1)],
        ));
        out = "probs";
    }
    let graph = GraphProto {
        name: "linear".into(),
        node: nodes,
        initializer: vec![
            ints("flat_shape", &[-1, PIXELS as i64]),
            floats("w", &[PIXELS as i64, classes], w.to_vec()),
            floats("b", &[classes], b.to_vec()),
        ],
        input: vec![value("x", input)],
        output: vec![value(out, &[None, Some(classes)])],
        ..Default::default()
    };
    encode(graph, "ember-test", 13)
}

#[test]
fn every_layout_classifies_like_the_reference() {
    let (w, b) = templates();
    let test = mnist::load(&data_dir(), Split::Test).unwrap().take(500);
    let expected: Vec<u8> = (0..test.len())
        .map(|i| argmax(&template_scores(test.image(i))) as u8)
        .collect();
    let correct = expected
        .iter()
        .zip(test.labels())
        .filter(|(a, b)| a == b)
        .count();
    assert!(
        correct > 350,
        "the template classifier should be well above chance: {correct}/500"
    );
    let layouts = [
        (Layout::Nchw, vec![None, Some(1), Some(28), Some(28)]),
        (Layout::Nhwc, vec![None, Some(28), Some(28), Some(1)]),
        (Layout::Nhw, vec![None, Some(28), Some(28)]),
        (Layout::Flat, vec![Some(1), Some(784)]),
    ];
    for (layout, dims) in layouts {
        for softmax in [false, true] {
            let bytes = linear_model(&dims, &w, &b, 10, softmax);
            let c = Classifier::from_bytes(Path::new("test.onnx"), &bytes).unwrap();
            assert_eq!(c.layout, layout);
            assert_eq!(
                c.scores,
                if softmax {
                    Scores::Probabilities
                } else {
                    Scores::Logits
                }
            );
            let predictions = runtime::eval::predict_all(&c, &test).unwrap();
            assert_eq!(predictions, expected, "{layout:?} softmax={softmax}");
            let plan = c.plan(1).unwrap();
            let out = plan.run(c.scale_pixels(test.image(0))).unwrap();
            let probs = c.probabilities(&out);
            assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
    }
}

fn refusal(bytes: &[u8]) -> String {
    match Classifier::from_bytes(Path::new("odd.onnx"), bytes) {
        Ok(_) => panic!("model was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn models_that_do_not_fit_are_refused_clearly() {
    let seven = linear_model(
        &[None, Some(1), Some(28), Some(28)],
        &vec![0.1; PIXELS * 7],
        &[0.0; 7],
        7,
        false,
    );
    let msg = refusal(&seven);
    assert!(
        msg.starts_with("odd.onnx: ") && msg.contains("is not [1, 10]"),
        "{msg}"
    );

    let rgb = linear_model(
        &[None, Some(3), Some(32), Some(32)],
        &vec![0.1; PIXELS * 10],
        &[0.0; 10],
        10,
        false,
    );
    let msg = refusal(&rgb);
    assert!(
        msg.contains("input shape [?,3,32,32] is not one 28×28 grey image"),
        "{msg}"
    );

    let mut proto = ModelProto::decode(
        &linear_model(
            &[None, Some(784)],
            &vec![0.1; PIXELS * 10],
            &[0.0; 10],
            10,
            false,
        )[..],
    )
    .unwrap();
    proto.graph.as_mut().unwrap().node[2].op_type = "FancyAdd".into();
    let msg = refusal(&proto.encode_to_vec());
    assert!(
        msg.starts_with("odd.onnx: tract cannot") && msg.contains("FancyAdd"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));

    let msg = refusal(b"definitely not protobuf");
    assert!(msg.starts_with("odd.onnx: not an ONNX model"), "{msg}");
}
