//! The committed model through the runtime: its accuracy matches the model card, real digits
//! survive the trip through picture files, and tract agrees with burn.

use std::path::{Path, PathBuf};

use image::{DynamicImage, GrayImage, ImageFormat};
mod common;

use common::{encode, redrawn};
use mnist::{Dataset, Split, PIXELS};
use runtime::classifier::{argmax, Classifier};
use runtime::preprocess;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn committed() -> Classifier {
    Classifier::load(&root().join("models/mnist_cnn.onnx")).unwrap()
}

fn test_set() -> Dataset {
    mnist::load(&root().join("data/mnist"), Split::Test).unwrap()
}

fn classify(c: &Classifier, framed: &[[u8; PIXELS]]) -> Vec<u8> {
    let pixels: Vec<u8> = framed.iter().flatten().copied().collect();
    let scores = c
        .plan(framed.len())
        .unwrap()
        .run(c.scale_pixels(&pixels))
        .unwrap();
    scores.chunks(10).map(|row| argmax(row) as u8).collect()
}

#[test]
fn eval_accuracy_equals_the_model_card() {
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("models/mnist_cnn.json")).unwrap(),
    )
    .unwrap();
    let c = committed();
    assert_eq!(card["onnx_sha256"].as_str().unwrap(), c.sha256);
    let test = test_set();
    let report = runtime::eval::Report::new(
        test.labels(),
        &runtime::eval::predict_all(&c, &test).unwrap(),
    );
    assert_eq!(report.images, 10_000);
    let rounded = (report.accuracy() * 1e4).round() / 1e4;
    assert_eq!(rounded, card["test_accuracy"].as_f64().unwrap());
}

#[test]
fn mnist_digits_as_png_classify_as_from_idx() {
    let c = committed();
    let test = test_set().take(2000);
    let direct: Vec<[u8; PIXELS]> = (0..test.len())
        .map(|i| test.image(i).try_into().unwrap())
        .collect();
    let framed: Vec<[u8; PIXELS]> = (0..test.len())
        .map(|i| {
            let img = GrayImage::from_raw(28, 28, test.image(i).to_vec()).unwrap();
            let png = encode(DynamicImage::ImageLuma8(img), ImageFormat::Png);
            preprocess::frame(&preprocess::decode(&png).unwrap()).unwrap()
        })
        .collect();
    let (a, b) = (classify(&c, &direct), classify(&c, &framed));
    let agree = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    assert!(
        agree as f64 >= 0.995 * test.len() as f64,
        "agreement {agree}/{}",
        test.len()
    );
}

#[test]
fn hand_drawn_style_pictures_still_classify() {
    let c = committed();
    let test = test_set().take(500);
    let framed: Vec<[u8; PIXELS]> = (0..test.len())
        .map(|i| preprocess::frame(&preprocess::decode(&redrawn(&test, i)).unwrap()).unwrap())
        .collect();
    let predicted = classify(&c, &framed);
    let correct = predicted
        .iter()
        .zip(test.labels())
        .filter(|(p, l)| p == l)
        .count();
    assert!(
        correct as f64 >= 0.97 * test.len() as f64,
        "{correct}/{}",
        test.len()
    );
}

#[test]
fn tract_logits_equal_burns_forward_pass() {
    use trainer::model::Arch;
    use trainer::train::{self, TrainConfig};
    let train_set = mnist::load(&root().join("data/mnist"), Split::Train)
        .unwrap()
        .take(1000);
    let test = test_set().take(256);
    let config = TrainConfig {
        arch: Arch::Cnn,
        epochs: 1,
        batch_size: 32,
        lr: 2e-3,
        seed: 5,
        augment: false,
        shards: 1,
    };
    let net = train::train(&config, &train_set, &test, |_, _| Ok(())).unwrap();
    let burn = train::logits(&net, &test, &train::device(0));
    let bytes = trainer::export::onnx_bytes(&net, Arch::Cnn).unwrap();
    let c = Classifier::from_bytes(Path::new("fresh.onnx"), &bytes).unwrap();
    let tract = c
        .plan(test.len())
        .unwrap()
        .run(c.scale_pixels(test.pixels()))
        .unwrap();
    let diff = burn
        .iter()
        .zip(&tract)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff <= 1e-4, "max |burn - tract| = {diff}");
}
