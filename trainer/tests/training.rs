//! Training on real MNIST data: it learns, it is deterministic, and its ONNX export runs in
//! tract with the same logits as burn.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use mnist::{Dataset, Split};
use tract_onnx::prelude::*;
use trainer::model::{Arch, Net};
use trainer::train::{self, TrainConfig};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist")
}

fn sets() -> &'static (Dataset, Dataset) {
    static SETS: OnceLock<(Dataset, Dataset)> = OnceLock::new();
    SETS.get_or_init(|| {
        let train = mnist::load(&data_dir(), Split::Train).unwrap().take(5000);
        let test = mnist::load(&data_dir(), Split::Test).unwrap().take(1000);
        (train, test)
    })
}

fn config(seed: u64) -> TrainConfig {
    TrainConfig {
        arch: Arch::Cnn,
        epochs: 1,
        batch_size: 16,
        lr: 4e-3,
        seed,
        augment: false,
        shards: 1,
    }
}

/// The tests' turn to run: one at a time. The device's seeded RNG is one for the whole process,
/// and burn draws initial weights lazily, at the first forward pass; a test seeding it
/// (`train::device`) while another trains would change that one's weights.
fn alone() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn fit(cfg: &TrainConfig, train_set: &Dataset, test_set: &Dataset) -> Net {
    train::train(cfg, train_set, test_set, |_, _| Ok(())).unwrap()
}

/// One epoch on the first 5,000 training images, as the quick tests share it.
fn trained() -> &'static Net {
    static NET: OnceLock<Net> = OnceLock::new();
    NET.get_or_init(|| {
        let (train_set, test_set) = sets();
        fit(&config(7), train_set, test_set)
    })
}

#[test]
fn one_epoch_on_5000_images_learns() {
    let _alone = alone();
    let (_, test_set) = sets();
    let acc = train::accuracy(trained(), test_set, &train::device(0));
    assert!(acc >= 0.90, "accuracy on 1,000 held-out test images: {acc}");
}

#[test]
fn same_seed_gives_the_same_model() {
    let _alone = alone();
    let (train_set, test_set) = sets();
    let small = train_set.take(1000);
    let run = |seed| {
        let net = fit(&config(seed), &small, test_set);
        train::logits(&net, &test_set.take(64), &train::device(0))
    };
    let (a, b, c) = (run(3), run(3), run(4));
    assert_eq!(a, b, "same seed, different logits");
    assert_ne!(a, c, "different seeds gave identical logits");
}

/// Split across two threads, a batch still trains, and a seed still gives one model.
#[test]
fn two_shards_learn_and_are_deterministic() {
    let _alone = alone();
    let (train_set, test_set) = sets();
    let sharded = TrainConfig {
        shards: 2,
        ..config(7)
    };
    let net = fit(&sharded, train_set, test_set);
    let acc = train::accuracy(&net, test_set, &train::device(0));
    assert!(acc >= 0.90, "accuracy with 2 shards: {acc}");
    let small = train_set.take(1000);
    let run = || {
        let net = fit(&sharded, &small, test_set);
        train::logits(&net, &test_set.take(64), &train::device(0))
    };
    assert_eq!(run(), run(), "2 shards, same seed, different logits");
}

#[test]
fn onnx_export_matches_burn_in_tract() {
    let _alone = alone();
    let (_, test_set) = sets();
    let net = trained();
    let bytes = trainer::export::onnx_bytes(net, Arch::Cnn).unwrap();
    let n = 256;
    let images = test_set.take(n);
    let burn_logits = train::logits(net, &images, &train::device(0));

    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .unwrap()
        .with_input_fact(0, f32::fact([n, 1, 28, 28]).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let pixels: Vec<f32> = images.pixels().iter().map(|&p| p as f32 / 255.0).collect();
    let input = tract_ndarray::Array4::from_shape_vec((n, 1, 28, 28), pixels).unwrap();
    let out = model.run(tvec!(Tensor::from(input).into())).unwrap();
    let tract_logits: Vec<f32> = out[0]
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect();

    assert_eq!(tract_logits.len(), burn_logits.len());
    let max_diff = tract_logits
        .iter()
        .zip(&burn_logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max_diff <= 1e-4, "max |tract - burn| = {max_diff}");
    let predictions = |l: &[f32]| l.chunks(10).map(card::argmax).collect::<Vec<_>>();
    assert_eq!(predictions(&tract_logits), predictions(&burn_logits));
}

#[test]
fn onnx_export_is_deterministic_and_carries_the_input_convention() {
    let _alone = alone();
    let net = trained();
    let a = trainer::export::onnx_bytes(net, Arch::Cnn).unwrap();
    let b = trainer::export::onnx_bytes(net, Arch::Cnn).unwrap();
    assert!(a == b, "two exports of one model differ");
    use prost::Message;
    let proto = tract_onnx::pb::ModelProto::decode(&a[..]).unwrap();
    let meta = |k: &str| {
        proto
            .metadata_props
            .iter()
            .find(|p| p.key == k)
            .map(|p| p.value.clone())
    };
    assert_eq!(meta("ember.pixel_offset").as_deref(), Some("0"));
    let scale: f32 = meta("ember.pixel_scale").unwrap().parse().unwrap();
    assert!((scale - 1.0 / 255.0).abs() < 1e-9);
}
