//! Graph models from outside the chain: the committed CNN rewritten with a depthwise branch
//! (channel multiplier 2, stride 2, a BatchNorm, Relu6) joined to the main path by a residual
//! Add, and a grouped pointwise branch, average-pooled with padding, concatenated on channels. The branches' weights are small, so the float
//! model stays accurate, and the int8 model must agree with it.

mod onnx;

use std::path::{Path, PathBuf};

use mnist::Split;
use onnx::graphs::branched;
use prost::Message;
use runtime::classifier::Classifier;
use runtime::quantize;
use tract_onnx::pb::ModelProto;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn a_branched_model_quantizes_and_agrees_with_tract() {
    let c = Classifier::from_bytes(Path::new("branched.onnx"), &branched()).unwrap();
    assert_eq!(quantize::refusal(&c), None);
    let q = quantize::quantize_mnist(&c, &root().join("data/mnist"), 2000, 1).unwrap();
    let names = q.names();
    for want in [
        "dwconv 8→16 3×3 s2×2",
        "add",
        "conv 16→4 1×1 /2 groups",
        "avgpool 3×3",
        "concat 2→20",
    ] {
        assert!(names.contains(&want), "{names:?}");
    }
    let test = mnist::load(&root().join("data/mnist"), Split::Test)
        .unwrap()
        .take(2000);
    let cost = quantize::cost(&c, &q, &test).unwrap();
    eprintln!(
        "{names:?}\n{cost:?}, arena {} of {} bytes",
        q.arena_bytes,
        q.activation_bytes()
    );
    assert!(cost.float_accuracy >= 0.98, "{cost:?}");
    assert!(cost.agreement >= 0.99, "{cost:?}");
    assert!(
        (cost.float_accuracy - cost.int8_accuracy).abs() <= 0.005,
        "{cost:?}"
    );
    // Every layer kind goes through the model file and comes back running the same logits.
    let from = compiler::Provenance::from_hex(&c.sha256).unwrap();
    let file = compiler::ModelBytes::new(&compiler::write(&q, &from));
    let from_file: Vec<[i8; 10]> = file
        .with(|f| {
            let mut arena = vec![0i8; f.header.arena_bytes];
            (0..test.len())
                .map(|i| {
                    firmware::run(&f.model, test.image(i), &mut arena)
                        .unwrap()
                        .logits
                })
                .collect()
        })
        .unwrap();
    assert!(from_file == quantize::simulate(&q, &test).unwrap());
    // The plan reuses memory: well below every activation at once.
    assert!(
        2 * q.arena_bytes < q.activation_bytes(),
        "arena {} for {} bytes of activations",
        q.arena_bytes,
        q.activation_bytes()
    );
}

#[test]
fn a_branch_is_no_longer_refused_but_an_unknown_operator_still_is() {
    let mut proto = ModelProto::decode(&branched()[..]).unwrap();
    let g = proto.graph.as_mut().unwrap();
    let add = g
        .node
        .iter()
        .position(|n| n.op_type == "Add" && n.output[0] == "residual")
        .unwrap();
    g.node[add].op_type = "Mul".into();
    let c = Classifier::from_bytes(Path::new("mul.onnx"), &proto.encode_to_vec()).unwrap();
    let why = quantize::refusal(&c).unwrap();
    assert_eq!(why.node().map(|n| n.op.as_str()), Some("Mul"), "{why}");
    assert!(
        why.to_string()
            .contains("(Mul): operator Mul is not supported"),
        "{why}"
    );
}

#[test]
fn classify_on_qemu_builds_the_service_for_a_graph_model_and_agrees_bit_for_bit() {
    let dir = std::env::temp_dir().join(format!("ember-graph-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("branched.onnx");
    std::fs::write(&model, branched()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(["classify", "--device", "qemu:m3", "--compare", "--model"])
        .arg(&model)
        .arg(root().join("docs/digit_7.png"))
        .arg(root().join("docs/digit_2.png"))
        .env("EMBER_DATA", root().join("data/mnist"))
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("device 7") || l.contains("device 2"))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}{stderr}");
    assert!(
        lines.iter().all(|l| l.ends_with("int8 logits identical")),
        "{stdout}"
    );
}

#[test]
fn a_zero_pad_before_a_conv_is_that_convs_padding() {
    // tf2onnx writes "same" padding as a Pad node before a Conv without pads.
    let original = std::fs::read(root().join("models/mnist_cnn.onnx")).unwrap();
    let mut proto = ModelProto::decode(&original[..]).unwrap();
    let g = proto.graph.as_mut().unwrap();
    let convs: Vec<usize> = (0..g.node.len())
        .filter(|&i| g.node[i].op_type == "Conv")
        .collect();
    for (k, &i) in convs.iter().enumerate().rev() {
        let input = g.node[i].input[0].clone();
        let padded = format!("padded_{k}");
        let pads = format!("pads_{k}");
        g.node[i].input[0] = padded.clone();
        g.node[i].attribute.retain(|a| a.name != "pads");
        g.node
            .insert(i, onnx::node("Pad", &[&input, &pads], &padded, vec![]));
        g.initializer
            .push(onnx::ints(&pads, &[0, 0, 1, 1, 0, 0, 1, 1]));
    }
    let padded = Classifier::from_bytes(Path::new("padded.onnx"), &proto.encode_to_vec()).unwrap();
    let committed = Classifier::from_bytes(Path::new("mnist_cnn.onnx"), &original).unwrap();
    let data = root().join("data/mnist");
    let test = mnist::load(&data, Split::Test).unwrap().take(500);
    let [a, b] = [&padded, &committed].map(|c| {
        let q = quantize::quantize_mnist(c, &data, 500, 1).unwrap();
        quantize::simulate(&q, &test).unwrap()
    });
    assert_eq!(
        a, b,
        "the padded graph's int8 logits equal the committed one's"
    );
    // A Pad that no Conv reads is refused, in one line naming it.
    let g = proto.graph.as_mut().unwrap();
    let pool = g.node.iter().position(|n| n.op_type == "MaxPool").unwrap();
    let input = g.node[pool].input[0].clone();
    g.node[pool].input[0] = "pool_padded".into();
    g.node.insert(
        pool,
        onnx::node("Pad", &[&input, "pads_0"], "pool_padded", vec![]),
    );
    let c = Classifier::from_bytes(Path::new("pool_pad.onnx"), &proto.encode_to_vec()).unwrap();
    let why = quantize::refusal(&c).unwrap();
    assert_eq!(why.node().map(|n| n.op.as_str()), Some("Pad"), "{why}");
    assert!(
        why.to_string()
            .contains("(Pad): a Pad is supported only right before the Conv"),
        "{why}"
    );
}

/// PyTorch exports `nn.AvgPool2d(2)` as an AveragePool with `count_include_pad=1` and no
/// padding, where the attribute changes nothing: the committed CNN with its first max pool so
/// written quantizes and agrees with tract. With padding, the divisor would differ, and it is
/// refused naming the node.
#[test]
fn pytorch_average_pool_with_count_include_pad_and_no_padding_is_taken() {
    use onnx::{int_attr, ints_attr};
    let mut proto =
        ModelProto::decode(&std::fs::read(root().join("models/mnist_cnn.onnx")).unwrap()[..])
            .unwrap();
    let g = proto.graph.as_mut().unwrap();
    let pool = g.node.iter().position(|n| n.op_type == "MaxPool").unwrap();
    let n = &mut g.node[pool];
    n.op_type = "AveragePool".into();
    n.attribute = vec![
        ints_attr("kernel_shape", &[2, 2]),
        ints_attr("strides", &[2, 2]),
        ints_attr("pads", &[0, 0, 0, 0]),
        int_attr("ceil_mode", 0),
        int_attr("count_include_pad", 1),
    ];
    let c = Classifier::from_bytes(Path::new("avg.onnx"), &proto.encode_to_vec()).unwrap();
    assert_eq!(quantize::refusal(&c), None);
    let q = quantize::quantize_mnist(&c, &root().join("data/mnist"), 500, 1).unwrap();
    assert!(q.names().contains(&"avgpool 2×2"), "{:?}", q.names());
    let test = mnist::load(&root().join("data/mnist"), Split::Test)
        .unwrap()
        .take(1000);
    let cost = quantize::cost(&c, &q, &test).unwrap();
    assert!(cost.agreement >= 0.98, "{cost:?}");
    let g = proto.graph.as_mut().unwrap();
    // A pad before each row and column keeps the 13×13 output.
    g.node[pool].attribute[2] = ints_attr("pads", &[1, 1, 0, 0]);
    let c = Classifier::from_bytes(Path::new("padded.onnx"), &proto.encode_to_vec()).unwrap();
    let why = quantize::refusal(&c).unwrap().to_string();
    assert!(
        why.contains("(AveragePool): count_include_pad=1 with padding"),
        "{why}"
    );
}
