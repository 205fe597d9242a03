//! Accuracy of a classifier on labelled digits: confusion matrix, per-class precision and
//! recall, and the list of mistakes.

use mnist::{Dataset, CLASSES, PIXELS};
use serde::Serialize;

use crate::classifier::{argmax, Classifier, ModelError};

/// Images per inference call in evaluation.
pub const EVAL_BATCH: usize = 500;

/// The outcome of an evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Images evaluated.
    pub images: usize,
    /// Correctly classified.
    pub correct: usize,
    /// `confusion[true][predicted]`.
    pub confusion: [[u32; CLASSES]; CLASSES],
    /// Indices of misclassified images with (true, predicted).
    pub mistakes: Vec<(usize, u8, u8)>,
}

impl Report {
    /// Builds the report from labels and predictions.
    pub fn new(labels: &[u8], predictions: &[u8]) -> Self {
        let mut confusion = [[0u32; CLASSES]; CLASSES];
        let mut mistakes = Vec::new();
        for (i, (&t, &p)) in labels.iter().zip(predictions).enumerate() {
            confusion[t as usize][p as usize] += 1;
            if t != p {
                mistakes.push((i, t, p));
            }
        }
        Report {
            images: labels.len(),
            correct: labels.len() - mistakes.len(),
            confusion,
            mistakes,
        }
    }

    /// Top-1 accuracy.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.images.max(1) as f64
    }

    /// Precision of class `c`: of the images predicted `c`, the share that are `c`.
    pub fn precision(&self, c: usize) -> f64 {
        let predicted: u32 = (0..CLASSES).map(|t| self.confusion[t][c]).sum();
        self.confusion[c][c] as f64 / predicted.max(1) as f64
    }

    /// Recall of class `c`: of the images that are `c`, the share predicted `c`.
    pub fn recall(&self, c: usize) -> f64 {
        let actual: u32 = self.confusion[c].iter().sum();
        self.confusion[c][c] as f64 / actual.max(1) as f64
    }

    /// The confusion matrix and per-class figures as a text table.
    pub fn table(&self) -> String {
        let mut out = String::from("true\\pred");
        for p in 0..CLASSES {
            out += &format!("{p:>6}");
        }
        out += "   precision  recall\n";
        for t in 0..CLASSES {
            out += &format!("{t:>9}");
            for p in 0..CLASSES {
                out += &format!("{:>6}", self.confusion[t][p]);
            }
            out += &format!(
                "   {:>8.2}%  {:>6.2}%\n",
                100.0 * self.precision(t),
                100.0 * self.recall(t)
            );
        }
        out
    }
}

/// Predicted classes of `classifier` for every image of `ds`, in batches.
pub fn predict_all(classifier: &Classifier, ds: &Dataset) -> Result<Vec<u8>, ModelError> {
    let full = classifier.plan(EVAL_BATCH.min(ds.len().max(1)))?;
    let mut predictions = Vec::with_capacity(ds.len());
    for start in (0..ds.len()).step_by(full.batch()) {
        let n = full.batch().min(ds.len() - start);
        let pixels = &ds.pixels()[start * PIXELS..(start + n) * PIXELS];
        let plan = if n == full.batch() {
            None
        } else {
            Some(classifier.plan(n)?)
        };
        let scores = plan
            .as_ref()
            .unwrap_or(&full)
            .run(classifier.scale_pixels(pixels))
            .map_err(|e| ModelError {
                path: classifier.path().display().to_string(),
                reason: format!("inference failed: {}", crate::classifier::one_line(&e)),
            })?;
        predictions.extend(scores.chunks(CLASSES).map(|row| argmax(row) as u8));
    }
    Ok(predictions)
}
