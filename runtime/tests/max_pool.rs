//! Ember's 2×2 max pool in tract's plan gives tract's own answers, bit for bit: on the committed
//! model over real test digits, and on pools of odd sizes and awkward values. Pools it does not
//! cover (padding, other kernels) are left to tract.

mod onnx;

use std::path::Path;

use mnist::Split;
use onnx::{encode, ints_attr, node, value};
use runtime::classifier::Classifier;
use runtime::max_pool::replace_max_pools;
use tract_onnx::pb::GraphProto;
use tract_onnx::prelude::*;

/// The outputs of `bytes` (an ONNX model) on `input`, with or without Ember's pool, and the
/// names of the optimized plan's ops.
fn run(bytes: &[u8], input: &Tensor, ember: bool) -> (Vec<f32>, Vec<String>) {
    let typed = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .unwrap()
        .with_input_fact(0, f32::fact(input.shape()).into())
        .unwrap()
        .into_typed()
        .unwrap();
    let typed = if ember {
        replace_max_pools(typed).unwrap()
    } else {
        typed
    };
    let plan = typed.into_optimized().unwrap().into_runnable().unwrap();
    let ops = plan
        .model()
        .nodes()
        .iter()
        .map(|n| n.op().name().to_string())
        .collect();
    let out = plan.run(tvec!(input.clone().into())).unwrap();
    let values = out[0].to_plain_array_view::<f32>().unwrap();
    (values.iter().copied().collect(), ops)
}

/// A model of one MaxPool over `[1, c, h, w]`.
fn pool_model(shape: [i64; 4], kernel: i64, stride: i64, pads: [i64; 4]) -> Vec<u8> {
    let [n, c, h, w] = shape;
    let out = |d: i64, a: i64, b: i64| (d + a + b - kernel) / stride + 1;
    let graph = GraphProto {
        node: vec![node(
            "MaxPool",
            &["x"],
            "y",
            vec![
                ints_attr("kernel_shape", &[kernel, kernel]),
                ints_attr("strides", &[stride, stride]),
                ints_attr("pads", &pads),
            ],
        )],
        input: vec![value("x", &[Some(n), Some(c), Some(h), Some(w)])],
        output: vec![value(
            "y",
            &[
                Some(n),
                Some(c),
                Some(out(h, pads[0], pads[2])),
                Some(out(w, pads[1], pads[3])),
            ],
        )],
        ..Default::default()
    };
    encode(graph, "max_pool test", 17)
}

/// Values that make a maximum go wrong if any is mishandled: negatives only, -inf, ties, -0.
fn awkward(shape: &[usize], seed: u32) -> Tensor {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    let len: usize = shape.iter().product();
    let values: Vec<f32> = (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            match i % 11 {
                0 => f32::NEG_INFINITY,
                1 => -0.0,
                2 => -1.5,
                _ => (x % 2001) as f32 / 100.0 - 30.0,
            }
        })
        .collect();
    Tensor::from_shape(shape, &values).unwrap()
}

#[test]
fn pools_of_odd_sizes_equal_tracts() {
    for (i, shape) in [[1, 1, 2, 2], [1, 3, 5, 7], [2, 4, 7, 7], [3, 2, 28, 29]]
        .into_iter()
        .enumerate()
    {
        let bytes = pool_model(shape.map(|d| d as i64), 2, 2, [0; 4]);
        let input = awkward(&shape, i as u32);
        let (ours, ops) = run(&bytes, &input, true);
        let (theirs, _) = run(&bytes, &input, false);
        assert!(
            ops.iter().any(|o| o == "EmberMaxPool2x2"),
            "{shape:?}: {ops:?}"
        );
        assert_eq!(ours, theirs, "{shape:?}");
    }
}

/// tract pools a single row into one (ONNX's floor gives none): tract's answer stands.
#[test]
fn a_pool_tract_shapes_otherwise_stays_tracts() {
    let shape = [1, 1, 1, 6];
    let bytes = pool_model(shape.map(|d| d as i64), 2, 2, [0; 4]);
    stays_tracts(&bytes, &awkward(&shape, 5));
}

#[test]
fn other_pools_stay_tracts() {
    let shape = [1, 2, 6, 6];
    let input = awkward(&shape, 9);
    for (kernel, stride, pads) in [(2, 2, [0, 0, 1, 1]), (3, 2, [0; 4]), (2, 1, [0; 4])] {
        let bytes = pool_model(shape.map(|d| d as i64), kernel, stride, pads);
        stays_tracts(&bytes, &input);
    }
}

/// Asserts that `bytes` keeps tract's own pool, and so tract's answer on `input`.
fn stays_tracts(bytes: &[u8], input: &Tensor) {
    let (ours, ops) = run(bytes, input, true);
    let (theirs, _) = run(bytes, input, false);
    assert!(!ops.iter().any(|o| o == "EmberMaxPool2x2"), "{ops:?}");
    assert_eq!(ours, theirs);
}

#[test]
fn the_committed_model_gives_tracts_logits_bit_for_bit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("models/mnist_cnn.onnx");
    let bytes = std::fs::read(&path).unwrap();
    let c = Classifier::load(&path).unwrap();
    let test = mnist::load(&onnx::data_dir(), Split::Test)
        .unwrap()
        .take(2000);
    let pixels = c.scale_pixels(test.pixels());
    let input = Tensor::from_shape(&[test.len(), 1, 28, 28], &pixels).unwrap();
    let (ours, ops) = run(&bytes, &input, true);
    let (theirs, _) = run(&bytes, &input, false);
    assert_eq!(ops.iter().filter(|o| *o == "EmberMaxPool2x2").count(), 3);
    assert_eq!(ours, theirs);
    // The classifier's own plan is the one with Ember's pool.
    let plan = c.plan(test.len()).unwrap();
    assert_eq!(plan.run(pixels).unwrap(), ours);
}
