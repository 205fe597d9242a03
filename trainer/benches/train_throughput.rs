//! Training speed of burn (flex backend) against PyTorch on Ember's CNN, in one run:
//! - the step rate: whole optimizer steps (forward, loss, backward, Adam) at batch 64 on real
//!   MNIST batches, with each batch on one thread and split across two (`--shards 2`);
//! - a whole epoch of `trainer train` (60,000 images), both ways;
//! - the same two figures for PyTorch (`bench/pytorch_train.py`), and the ratios.
//!
//! PyTorch is looked for in `target/bench-venv`, then as `python3`. Without it the bench fails:
//! a comparison that is skipped measures nothing. `EMBER_BENCH_INSTALL=1` installs it into
//! `target/bench-venv` first (PyPI's wheel brings its CUDA libraries: about 5.5 GB).
//!
//! Run: `EMBER_BENCH_INSTALL=1 cargo bench -p ember-trainer --bench train_throughput`

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::AdamConfig;
use mnist::{Dataset, Split};
use trainer::model::{Arch, Net};
use trainer::train::{self, TrainConfig};

const BATCH: usize = 64;
const WARMUP_STEPS: usize = 20;
const STEPS: usize = 300;

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let data_dir = root.join("data/mnist");
    let train_set = mnist::load(&data_dir, Split::Train).expect("MNIST in data/mnist");
    let test_set = mnist::load(&data_dir, Split::Test).expect("MNIST in data/mnist");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut burn = Vec::new();
    for shards in [1, 2] {
        let steps = step_rate(&train_set, shards);
        let epoch = epoch_seconds(&train_set, &test_set, shards);
        println!(
            "burn 0.22 flex, cnn, batch {BATCH}, {threads} threads, {shards} shard(s): \
             steps {steps:.0} images/s; epoch of {} images {epoch:.2} s ({:.0} images/s)",
            train_set.len(),
            train_set.len() as f64 / epoch
        );
        burn.push((shards, steps, epoch));
    }
    let Some((torch_steps, torch_epoch)) = pytorch(&root, &data_dir) else {
        return ExitCode::FAILURE;
    };
    for (shards, steps, epoch) in burn {
        println!(
            "burn ({shards} shard(s)) / PyTorch: step rate {:.2}x slower, epoch {:.2}x longer",
            torch_steps / steps,
            epoch / torch_epoch
        );
    }
    ExitCode::SUCCESS
}

/// Images per second over whole optimizer steps, each batch split into `shards` replicas by
/// the training loop's own [`train::batch_gradients`].
fn step_rate(train_set: &Dataset, shards: usize) -> f64 {
    let device = train::device(1);
    let ad = device.autodiff();
    let mut model = Net::new(Arch::Cnn, &ad);
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let cfg = config(shards);
    let inputs = train::Inputs {
        set: train_set,
        cfg: &cfg,
        epoch: 1,
        device: &ad,
        loss_fn: &loss_fn,
    };
    let order: Vec<usize> = (0..train_set.len()).collect();
    let mut batches = order.chunks(BATCH).cycle();
    let mut started = Instant::now();
    for step in 0..WARMUP_STEPS + STEPS {
        if step == WARMUP_STEPS {
            started = Instant::now();
        }
        let batch = batches.next().expect("cycle never ends");
        let grads = train::batch_gradients(&model, &inputs, batch).grads;
        model = optim.step(1e-3, model, grads);
    }
    let _ = model.valid();
    (STEPS * BATCH) as f64 / started.elapsed().as_secs_f64()
}

/// `trainer train`'s defaults for the CNN, one epoch, with `shards`.
fn config(shards: usize) -> TrainConfig {
    let (_, batch_size, lr) = Arch::Cnn.defaults();
    TrainConfig {
        arch: Arch::Cnn,
        epochs: 1,
        batch_size,
        lr,
        seed: 42,
        augment: false,
        shards,
    }
}

/// Seconds of training in one epoch of `trainer train` (its evaluation excluded).
fn epoch_seconds(train_set: &Dataset, test_set: &Dataset, shards: usize) -> f64 {
    let cfg = config(shards);
    let mut seconds = f64::NAN;
    train::train(&cfg, train_set, &test_set.take(1000), |stats, _| {
        seconds = train_set.len() as f64 / stats.images_per_sec;
        Ok(())
    })
    .expect("training");
    seconds
}

/// PyTorch's step rate and epoch seconds, printing its lines; `None`, having said why, when
/// it cannot run.
fn pytorch(root: &Path, data_dir: &Path) -> Option<(f64, f64)> {
    let venv = root.join("target/bench-venv");
    if std::env::var_os("EMBER_BENCH_INSTALL").is_some() && !has_torch(&venv_python(&venv)) {
        install_torch(&venv)?;
    }
    let python = [venv_python(&venv), PathBuf::from("python3")]
        .into_iter()
        .find(|p| has_torch(p));
    let Some(python) = python else {
        eprintln!(
            "error: PyTorch is not installed, so nothing was compared. Run again with \
             EMBER_BENCH_INSTALL=1 to install it into target/bench-venv (about 5.5 GB)."
        );
        return None;
    };
    let out = Command::new(&python)
        .arg(root.join("bench/pytorch_train.py"))
        .arg(data_dir)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    let figure = |key: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
    };
    let figures = figure("torch_images_per_sec ").zip(figure("torch_epoch_seconds "));
    if figures.is_none() {
        eprintln!(
            "error: {} bench/pytorch_train.py gave no figures: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    figures
}

fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin/python")
}

fn has_torch(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import torch, numpy"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Creates `venv` if needed and installs PyTorch and NumPy into it from PyPI.
fn install_torch(venv: &Path) -> Option<()> {
    eprintln!("installing PyTorch into {} (about 5.5 GB)…", venv.display());
    let ok = |c: &mut Command| c.status().is_ok_and(|s| s.success());
    let created =
        venv_python(venv).exists() || ok(Command::new("python3").arg("-m").arg("venv").arg(venv));
    let installed = created
        && ok(Command::new(venv.join("bin/pip")).args(["install", "--quiet", "torch", "numpy"]));
    if !installed {
        eprintln!("error: could not install PyTorch into {}", venv.display());
    }
    installed.then_some(())
}
