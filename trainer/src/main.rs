//! `trainer`: train the MNIST classifier, export it as ONNX, and look at data and models.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use card::ModelCard;
use clap::{Parser, Subcommand};
use mnist::Split;
use trainer::model::Arch;
use trainer::run::{load_checkpoint, save_checkpoint, RunRecord};
use trainer::train::{self, EpochStats, TrainConfig};
use trainer::{export, summary};

/// Train a digit classifier on MNIST with burn and export it as ONNX.
///
/// The usual path: `trainer train`, then `trainer export models/mnist_cnn.onnx`.
#[derive(Parser)]
#[command(name = "trainer", version = env!("EMBER_VERSION"), about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a network; evaluates on the 10,000 test images after every epoch.
    ///
    /// Writes into --out: last.bpk and best.bpk (checkpoints), run.json and history.csv
    /// (per-epoch figures) and curves.png (training curves).
    Train {
        /// Folder holding the MNIST files [default: $EMBER_DATA, else ./data/mnist].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Network to train: `cnn` (Ember's, for microcontrollers) or `mlp` (the tutorial's).
        #[arg(long, value_enum, default_value = "cnn")]
        arch: Arch,
        /// Passes over the training set [default: cnn 8, ds 10, mlp 3].
        #[arg(long)]
        epochs: Option<usize>,
        /// Images per optimizer step [default: cnn 64, mlp 32].
        #[arg(long)]
        batch_size: Option<usize>,
        /// Peak learning rate of Adam; decays along a cosine to 1/20 of it [default: cnn 0.002, mlp 0.001].
        #[arg(long)]
        lr: Option<f64>,
        /// Seed of initialization and data order: the same seed gives the same model.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output folder [default: runs/ARCH].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Train on only the first N training images (quick experiments).
        #[arg(long)]
        train_limit: Option<usize>,
        /// Evaluate on only the first N test images.
        #[arg(long)]
        test_limit: Option<usize>,
        /// Augment each training image afresh every epoch: shift ±2 px, rotation ±12°,
        /// scale 0.9–1.1 and a thicker or thinner stroke, drawn from the seed.
        #[arg(long)]
        augment: bool,
        /// Split each batch into N parts, each run by its own replica of the model in parallel
        /// (data parallel). 2 trains about 1.8× faster on 2 cores; the model then differs from
        /// the committed one by float rounding, and is still the same for a seed.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        shards: u16,
    },
    /// Export a checkpoint as ONNX (input [N,1,28,28], pixels/255) and write its model card.
    Export {
        /// Checkpoint written by `trainer train`.
        #[arg(long, default_value = "runs/cnn/last.bpk")]
        checkpoint: PathBuf,
        /// Folder holding the MNIST files [default: $EMBER_DATA, else ./data/mnist].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Model card to write or update [default: the ONNX path with .json].
        #[arg(long)]
        card: Option<PathBuf>,
        /// The ONNX file to write, e.g. models/mnist_cnn.onnx.
        output: PathBuf,
    },
    /// Print a network layer by layer: output shape, parameters, multiply-accumulates.
    Summary {
        /// Network to describe.
        #[arg(long, value_enum, default_value = "cnn")]
        arch: Arch,
    },
    /// Draw a grid of sample digits with their labels to a PNG.
    Show {
        /// Folder holding the MNIST files [default: $EMBER_DATA, else ./data/mnist].
        #[arg(long)]
        data: Option<PathBuf>,
        /// How many digits, from the first.
        #[arg(long, default_value_t = 20)]
        count: usize,
        /// Take them from the test set instead of the training set.
        #[arg(long)]
        test: bool,
        /// The PNG to write.
        output: PathBuf,
    },
    /// Predict one test image: its logits and the digit.
    Predict {
        /// Checkpoint written by `trainer train`.
        #[arg(long, default_value = "runs/cnn/last.bpk")]
        checkpoint: PathBuf,
        /// Folder holding the MNIST files [default: $EMBER_DATA, else ./data/mnist].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Index of the test image (0-9999).
        #[arg(long)]
        index: usize,
    },
}

fn main() -> ExitCode {
    // A panic is a bug in Ember or burn, never the user's doing: one line, no backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error, please report it: {info}");
    }));
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Train {
            data,
            arch,
            epochs,
            batch_size,
            lr,
            seed,
            out,
            train_limit,
            test_limit,
            augment,
            shards,
        } => {
            let (e, b, l) = arch.defaults();
            let config = TrainConfig {
                arch,
                epochs: epochs.unwrap_or(e),
                batch_size: batch_size.unwrap_or(b).max(1),
                lr: lr.unwrap_or(l),
                seed,
                augment,
                shards: shards as usize,
            };
            let out = out.unwrap_or_else(|| Path::new("runs").join(arch.name()));
            train_command(
                &mnist::data_dir(data.as_deref())?,
                config,
                &out,
                train_limit,
                test_limit,
            )
        }
        Command::Export {
            checkpoint,
            data,
            card,
            output,
        } => {
            let card = card.unwrap_or_else(|| output.with_extension("json"));
            export_command(
                &checkpoint,
                &mnist::data_dir(data.as_deref())?,
                &output,
                &card,
            )
        }
        Command::Summary { arch } => {
            print!("{}", summary::table(arch));
            Ok(())
        }
        Command::Show {
            data,
            count,
            test,
            output,
        } => show_command(&mnist::data_dir(data.as_deref())?, count, test, &output),
        Command::Predict {
            checkpoint,
            data,
            index,
        } => predict_command(&checkpoint, &mnist::data_dir(data.as_deref())?, index),
    }
}

fn train_command(
    data: &Path,
    config: TrainConfig,
    out: &Path,
    train_limit: Option<usize>,
    test_limit: Option<usize>,
) -> anyhow::Result<()> {
    let train_set = mnist::load(data, Split::Train)?.take(train_limit.unwrap_or(usize::MAX));
    let test_set = mnist::load(data, Split::Test)?.take(test_limit.unwrap_or(usize::MAX));
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create output folder", out.display()))?;
    println!(
        "training {} ({} parameters) on {} images, testing on {}; {} epochs, batch {}, lr {}, seed {}",
        config.arch.name(),
        summary::total_params(config.arch),
        train_set.len(),
        test_set.len(),
        config.epochs,
        config.batch_size,
        config.lr,
        config.seed
    );
    println!(
        "{:>5} {:>8} {:>9} {:>9} {:>10} {:>7}",
        "epoch", "loss", "train acc", "test acc", "images/s", "time"
    );
    let mut record = RunRecord {
        config: config.clone(),
        history: Vec::new(),
        best_epoch: 0,
        train_images: train_set.len(),
        test_images: test_set.len(),
    };
    train::train(
        &config,
        &train_set,
        &test_set,
        |stats: &EpochStats, model| {
            println!(
                "{:>5} {:>8.4} {:>8.2}% {:>8.2}% {:>10.0} {:>6.1}s",
                stats.epoch,
                stats.loss,
                100.0 * stats.train_acc,
                100.0 * stats.test_acc,
                stats.images_per_sec,
                stats.seconds
            );
            let best = record.history.iter().all(|e| stats.test_acc > e.test_acc);
            record.history.push(stats.clone());
            if best {
                record.best_epoch = stats.epoch;
                save_checkpoint(model, &out.join("best.bpk"))?;
            }
            save_checkpoint(model, &out.join("last.bpk"))?;
            record.save(out)
        },
    )?;
    let last = record
        .history
        .last()
        .context("no epoch was run (--epochs 0)")?;
    println!(
        "done in {:.1}s: test accuracy {:.2}% (best {:.2}% at epoch {}); checkpoints, history and curves.png in {}",
        record.seconds(),
        100.0 * last.test_acc,
        100.0 * record.history[record.best_epoch - 1].test_acc,
        record.best_epoch,
        out.display()
    );
    Ok(())
}

fn export_command(
    checkpoint: &Path,
    data: &Path,
    output: &Path,
    card_path: &Path,
) -> anyhow::Result<()> {
    let device = train::device(0);
    let (model, record) = load_checkpoint(checkpoint, &device)?;
    let test_set = mnist::load(data, Split::Test)?;
    let accuracy = train::accuracy(&model, &test_set, &device);
    let bytes = export::onnx_bytes(&model, record.config.arch)?;
    export::write(output, &bytes)?;
    let sha = card::sha256_hex(&bytes);
    let arch = record.config.arch;
    let file_name = |p: Option<&std::ffi::OsStr>| p.map(|s| s.to_string_lossy().into_owned());
    let old = ModelCard::read(card_path)?;
    // The int8 and firmware figures describe one model: keep them only if it is this one.
    let same_model = old.as_ref().filter(|c| c.onnx_sha256 == sha);
    let card = ModelCard {
        name: file_name(output.file_stem()).unwrap_or_default(),
        onnx: file_name(output.file_name()).unwrap_or_default(),
        onnx_sha256: sha.clone(),
        arch: arch.name().to_string(),
        layers: summary::rows(arch).iter().map(|r| r.name.clone()).collect(),
        parameters: summary::total_params(arch) as u64,
        macs: summary::total_macs(arch) as u64,
        input: export::INPUT_CONVENTION.to_string(),
        pixel_scale: export::PIXEL_SCALE as f64,
        pixel_offset: export::PIXEL_OFFSET as f64,
        training: card::Training {
            framework: "burn 0.22 (flex backend, CPU)".to_string(),
            epochs: record.config.epochs,
            batch_size: record.config.batch_size,
            lr: record.config.lr,
            optimizer: "Adam, cosine decay to lr/20".to_string(),
            seed: record.config.seed,
            train_images: record.train_images,
            augment: record
                .config
                .augment
                .then(|| trainer::augment::DESCRIPTION.to_string()),
        },
        test_accuracy: (accuracy * 1e4).round() / 1e4,
        test_images: test_set.len() as u64,
        int8: same_model.and_then(|c| c.int8.clone()),
        firmware: same_model.map(|c| c.firmware.clone()).unwrap_or_default(),
    };
    card.write(card_path)?;
    println!(
        "wrote {} ({} bytes, sha256 {}), test accuracy {:.2}% on {} images; model card {}",
        output.display(),
        bytes.len(),
        &sha[..16],
        100.0 * accuracy,
        test_set.len(),
        card_path.display()
    );
    Ok(())
}

fn show_command(data: &Path, count: usize, test: bool, output: &Path) -> anyhow::Result<()> {
    let split = if test { Split::Test } else { Split::Train };
    let ds = mnist::load(data, split)?;
    let count = count.min(ds.len());
    let tiles: Vec<viz::Tile> = (0..count)
        .map(|i| viz::Tile {
            pixels: ds.image(i),
            caption: format!("#{i}: {}", ds.label(i)),
            highlight: false,
        })
        .collect();
    let title = format!(
        "MNIST {} set, first {count} images",
        if test { "test" } else { "training" }
    );
    viz::digit_grid(&tiles, 10, &title, output)?;
    println!("wrote {} ({count} digits)", output.display());
    Ok(())
}

fn predict_command(checkpoint: &Path, data: &Path, index: usize) -> anyhow::Result<()> {
    let device = train::device(0);
    let (model, _) = load_checkpoint(checkpoint, &device)?;
    let test_set = mnist::load(data, Split::Test)?;
    if index >= test_set.len() {
        anyhow::bail!(
            "--index {index}: the test set has {} images (0-{})",
            test_set.len(),
            test_set.len() - 1
        );
    }
    let one =
        mnist::Dataset::from_parts(test_set.image(index).to_vec(), vec![test_set.label(index)])
            .context("one image is a valid dataset")?;
    let row = train::logits(&model, &one, &device);
    let shown: Vec<String> = row.iter().map(|v| format!("{v:.3}")).collect();
    println!("test image {index}: label {}", test_set.label(index));
    println!("logits [{}]", shown.join(", "));
    println!("predicted digit: {}", card::argmax(&row));
    Ok(())
}
