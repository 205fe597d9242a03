//! A training run on disk: `run.json` (config and history), `history.csv`, `curves.png`,
//! `last.bpk` and `best.bpk` checkpoints.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::model::{Arch, Net};
use crate::train::{EpochStats, TrainConfig};

/// The record of a run, written after every epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// How the run was configured.
    pub config: TrainConfig,
    /// One entry per finished epoch.
    pub history: Vec<EpochStats>,
    /// Epoch with the best test accuracy.
    pub best_epoch: usize,
    /// Training images.
    pub train_images: usize,
    /// Test images evaluated after each epoch.
    pub test_images: usize,
}

impl RunRecord {
    /// Total wall time so far, seconds.
    pub fn seconds(&self) -> f64 {
        self.history.iter().map(|e| e.seconds).sum()
    }

    /// Mean training throughput over all epochs, images per second.
    pub fn images_per_sec(&self) -> f64 {
        let n = self.history.len().max(1) as f64;
        self.history.iter().map(|e| e.images_per_sec).sum::<f64>() / n
    }

    /// Writes `run.json`, `history.csv` and `curves.png` into `dir`.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        crate::export::write(&dir.join("run.json"), json.as_bytes())?;
        let mut csv = String::from("epoch,loss,train_acc,test_acc,images_per_sec,seconds\n");
        for e in &self.history {
            csv += &format!(
                "{},{:.6},{:.6},{:.6},{:.1},{:.2}\n",
                e.epoch, e.loss, e.train_acc, e.test_acc, e.images_per_sec, e.seconds
            );
        }
        crate::export::write(&dir.join("history.csv"), csv.as_bytes())?;
        let col = |f: fn(&EpochStats) -> f64| self.history.iter().map(f).collect::<Vec<_>>();
        let (loss, train, test) = (col(|e| e.loss), col(|e| e.train_acc), col(|e| e.test_acc));
        viz::training_curves(
            &[viz::Series {
                label: "train loss",
                values: &loss,
            }],
            &[
                viz::Series {
                    label: "train",
                    values: &train,
                },
                viz::Series {
                    label: "test",
                    values: &test,
                },
            ],
            &dir.join("curves.png"),
        )?;
        Ok(())
    }

    /// Reads the record of the run that wrote `checkpoint` (its `run.json` sits beside it).
    pub fn for_checkpoint(checkpoint: &Path) -> anyhow::Result<(Self, PathBuf)> {
        if !checkpoint.is_file() {
            bail!(
                "{}: checkpoint not found (train one with `trainer train`)",
                checkpoint.display()
            );
        }
        let path = checkpoint.with_file_name("run.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: cannot read the run record beside the checkpoint",
                path.display()
            )
        })?;
        let record = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a trainer run record", path.display()))?;
        Ok((record, path))
    }
}

/// Saves the weights of `model` to `path` (burnpack format).
pub fn save_checkpoint(model: &Net, path: &Path) -> anyhow::Result<()> {
    model
        .clone()
        .save_file(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot save checkpoint: {e:?}", path.display()))
}

/// Loads a checkpoint written by `trainer train`, with the architecture its run recorded.
pub fn load_checkpoint(path: &Path, device: &Device) -> anyhow::Result<(Net, RunRecord)> {
    let (record, _) = RunRecord::for_checkpoint(path)?;
    Ok((load_weights(record.config.arch, path, device)?, record))
}

/// Loads the weights at `path` into a fresh `arch` network.
pub fn load_weights(arch: Arch, path: &Path, device: &Device) -> anyhow::Result<Net> {
    Net::new(arch, device).try_load_file(path).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a checkpoint of a {} network: {e:?}",
            path.display(),
            arch.name()
        )
    })
}
