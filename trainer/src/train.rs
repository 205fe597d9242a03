//! The training loop: Adam on cross-entropy, cosine-decayed learning rate, evaluation on the
//! test set after every epoch.

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{AdamConfig, GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use mnist::Dataset;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{self, SplitMix};
use crate::model::{Arch, Net};

/// Everything that determines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Network architecture.
    pub arch: Arch,
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per optimizer step.
    pub batch_size: usize,
    /// Peak learning rate; decays along a cosine to a twentieth of it.
    pub lr: f64,
    /// Seed of weight initialization, data order and augmentation.
    pub seed: u64,
    /// Augment every training image afresh each epoch (see [`crate::augment`]).
    #[serde(default)]
    pub augment: bool,
    /// Parts each batch is split into, run in parallel (data parallel, see
    /// [`batch_gradients`]). 1 keeps the arithmetic of the committed model; more changes float
    /// rounding, not the result's determinism for a seed.
    #[serde(default = "one_shard")]
    pub shards: usize,
}

fn one_shard() -> usize {
    1
}

/// What one epoch measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Accuracy on the training batches, as seen during the epoch.
    pub train_acc: f64,
    /// Accuracy on the test set after the epoch.
    pub test_acc: f64,
    /// Training throughput, images per second (evaluation excluded).
    pub images_per_sec: f64,
    /// Wall time of the epoch including evaluation, seconds.
    pub seconds: f64,
}

/// The CPU device used for training, with its RNG seeded.
pub fn device(seed: u64) -> Device {
    let device = Device::flex();
    device.seed(seed);
    device
}

fn lr_at(cfg: &TrainConfig, step: usize, total: usize) -> f64 {
    let floor = cfg.lr / 20.0;
    let progress = step as f64 / total.max(1) as f64;
    floor + 0.5 * (cfg.lr - floor) * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Trains a fresh network; `after_epoch` sees each epoch's stats and the model in eval mode.
pub fn train(
    cfg: &TrainConfig,
    train_set: &Dataset,
    test_set: &Dataset,
    mut after_epoch: impl FnMut(&EpochStats, &Net) -> anyhow::Result<()>,
) -> anyhow::Result<Net> {
    let device = device(cfg.seed);
    let ad = device.clone().autodiff();
    ad.seed(cfg.seed);
    let mut model = Net::new(cfg.arch, &ad);
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let mut rng = SplitMix::new(cfg.seed);
    let mut order: Vec<usize> = (0..train_set.len()).collect();
    let steps_per_epoch = order.len().div_ceil(cfg.batch_size);
    let total_steps = steps_per_epoch * cfg.epochs;
    for epoch in 1..=cfg.epochs {
        rng.shuffle(&mut order);
        let started = Instant::now();
        let bar = progress_bar(epoch, cfg.epochs, order.len());
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        let inputs = Inputs {
            set: train_set,
            cfg,
            epoch,
            device: &ad,
            loss_fn: &loss_fn,
        };
        for (b, batch) in order.chunks(cfg.batch_size).enumerate() {
            let step = batch_gradients(&model, &inputs, batch);
            loss_sum += step.loss_sum;
            correct += step.correct;
            let grads = step.grads;
            let lr = lr_at(cfg, (epoch - 1) * steps_per_epoch + b, total_steps);
            model = optim.step(lr, model, grads);
            seen += batch.len();
            bar.set_position(seen as u64);
            bar.set_message(format!(
                "loss {:.4} acc {:.2}%",
                loss_sum / seen as f64,
                100.0 * correct as f64 / seen as f64
            ));
        }
        bar.finish_and_clear();
        let train_secs = started.elapsed().as_secs_f64();
        let valid = model.valid();
        let test_acc = accuracy(&valid, test_set, &device);
        let stats = EpochStats {
            epoch,
            loss: loss_sum / seen as f64,
            train_acc: correct as f64 / seen as f64,
            test_acc,
            images_per_sec: seen as f64 / train_secs,
            seconds: started.elapsed().as_secs_f64(),
        };
        after_epoch(&stats, &valid)?;
    }
    Ok(model.valid())
}

/// What a training step reads besides the model and the batch.
pub struct Inputs<'a> {
    /// The training images.
    pub set: &'a Dataset,
    /// The run's configuration (augmentation, seed, shards).
    pub cfg: &'a TrainConfig,
    /// 1-based epoch, which seeds augmentation.
    pub epoch: usize,
    /// The autodiff device.
    pub device: &'a Device,
    /// The loss.
    pub loss_fn: &'a CrossEntropyLoss,
}

/// A batch's gradients of the mean loss, with its summed loss and correct answers.
pub struct Step {
    /// Gradients of the batch's mean loss.
    pub grads: GradientsParams,
    /// The loss summed over the batch's images.
    pub loss_sum: f64,
    /// Images the model got right.
    pub correct: usize,
}

/// Forward and backward over `batch`, weighing its loss by `weight` (its share of the batch).
fn shard_gradients(model: &Net, inputs: &Inputs, batch: &[usize], weight: f64) -> Step {
    let x = if inputs.cfg.augment {
        data::augmented_images(
            inputs.set,
            batch,
            inputs.cfg.seed,
            inputs.epoch,
            inputs.device,
        )
    } else {
        data::images(inputs.set, batch, inputs.device)
    };
    let y = data::labels(inputs.set, batch, inputs.device);
    let logits = model.forward(x);
    let loss = inputs.loss_fn.forward(logits.clone(), y.clone());
    let correct = count_correct(logits, y.inner());
    let loss_sum = loss.clone().into_scalar::<f32>() as f64 * batch.len() as f64;
    let loss = if weight == 1.0 { loss } else { loss * weight };
    let grads = GradientsParams::from_grads(loss.backward(), model);
    Step {
        grads,
        loss_sum,
        correct,
    }
}

/// The gradients of `batch`'s mean loss. With `shards` > 1 the batch is split into that many
/// parts, each run by its own replica of the model as a task on rayon's pool: burn flex keeps
/// about 1.2 of 2 cores busy on one batch, and replicas, whose autodiff graphs share no node,
/// fill both. On the pool, a shard waiting for burn's parallel loops helps run them; on threads
/// of their own the shards reached only 1.46 cores. Each part's loss is weighed by its share,
/// and the parts' gradients are summed in order, so a seed still gives one model.
pub fn batch_gradients(model: &Net, inputs: &Inputs, batch: &[usize]) -> Step {
    let shards = inputs.cfg.shards.clamp(1, batch.len().max(1));
    if shards == 1 {
        return shard_gradients(model, inputs, batch, 1.0);
    }
    let parts: Vec<&[usize]> = batch.chunks(batch.len().div_ceil(shards)).collect();
    let steps: Vec<Step> = parts
        .par_iter()
        .map(|part| {
            let weight = part.len() as f64 / batch.len() as f64;
            shard_gradients(&model.valid().train(), inputs, part, weight)
        })
        .collect();
    let mut sum = GradientsAccumulator::<Net>::new();
    let (mut loss_sum, mut correct) = (0.0, 0);
    for step in steps {
        sum.accumulate(model, step.grads);
        loss_sum += step.loss_sum;
        correct += step.correct;
    }
    Step {
        grads: sum.grads(),
        loss_sum,
        correct,
    }
}

fn progress_bar(epoch: usize, epochs: usize, len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {pos}/{len} {per_sec} {msg} (eta {eta})",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

fn count_correct(logits: Tensor<2>, labels: Tensor<1, burn::tensor::Int>) -> usize {
    let predicted = logits.inner().argmax(1).flatten::<1>(0, 1);
    predicted.equal(labels).int().sum().into_scalar::<i64>() as usize
}

/// Logits `[N, 10]` of `model` for every image of `ds`, row-major.
pub fn logits(model: &Net, ds: &Dataset, device: &Device) -> Vec<f32> {
    let mut out = Vec::with_capacity(ds.len() * 10);
    let all: Vec<usize> = (0..ds.len()).collect();
    for batch in all.chunks(1000) {
        let scores = model.forward(data::images(ds, batch, device));
        out.extend(scores.into_data().try_to_vec::<f32>().expect("f32 logits"));
    }
    out
}

/// Top-1 accuracy of `model` on `ds`.
pub fn accuracy(model: &Net, ds: &Dataset, device: &Device) -> f64 {
    let scores = logits(model, ds, device);
    let correct = scores
        .chunks(10)
        .zip(ds.labels())
        .filter(|(row, &label)| card::argmax(row) == label as usize)
        .count();
    correct as f64 / ds.len().max(1) as f64
}
