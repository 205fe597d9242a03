//! Training throughput of burn (flex backend) on Ember's CNN, images per second, measured over
//! whole optimizer steps (forward, loss, backward, Adam) at batch 64 on real MNIST batches.
//! Where PyTorch is installed, `bench/pytorch_train.py` trains the same network in the same
//! run and the ratio is printed.
//!
//! Run: `cargo bench -p ember-trainer --bench train_throughput`

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use mnist::Split;
use trainer::data;
use trainer::model::{Arch, Net};

const BATCH: usize = 64;
const WARMUP_STEPS: usize = 20;
const STEPS: usize = 300;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let train_set =
        mnist::load(&root.join("data/mnist"), Split::Train).expect("MNIST in data/mnist");
    let device = trainer::train::device(1);
    let ad = device.autodiff();
    let mut model = Net::new(Arch::Cnn, &ad);
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let order: Vec<usize> = (0..train_set.len()).collect();
    let mut batches = order.chunks(BATCH).cycle();
    let mut started = Instant::now();
    for step in 0..WARMUP_STEPS + STEPS {
        if step == WARMUP_STEPS {
            started = Instant::now();
        }
        let batch = batches.next().expect("cycle never ends");
        let x = data::images(&train_set, batch, &ad);
        let y = data::labels(&train_set, batch, &ad);
        let loss = loss_fn.forward(model.forward(x), y);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
    }
    let _ = model.valid();
    let burn_rate = (STEPS * BATCH) as f64 / started.elapsed().as_secs_f64();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("burn 0.22 flex, cnn, batch {BATCH}, {threads} threads: {burn_rate:.0} images/s");

    let script = root.join("bench/pytorch_train.py");
    match Command::new("python3")
        .arg(&script)
        .arg(root.join("data/mnist"))
        .output()
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            print!("{text}");
            if let Some(rate) = text
                .lines()
                .find_map(|l| l.strip_prefix("torch_images_per_sec "))
            {
                let torch: f64 = rate.trim().parse().unwrap_or(f64::NAN);
                println!("ratio: PyTorch / burn = {:.2}", torch / burn_rate);
            }
        }
        Ok(out) => println!(
            "PyTorch comparison skipped: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => println!("PyTorch comparison skipped: python3: {e}"),
    }
}
