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

/// Why a set of answers looks like a model fed the wrong way, if it does: accuracy near
/// chance (when the labels are known), or one digit for nearly every picture (at least 10).
pub fn degenerate(predictions: &[u8], accuracy: Option<f64>) -> Option<String> {
    if let Some(a) = accuracy.filter(|&a| a < 0.2 && !predictions.is_empty()) {
        return Some(format!("accuracy {:.2}% is near chance (10%)", 100.0 * a));
    }
    let mut counts = [0usize; CLASSES];
    for &p in predictions {
        counts[(p as usize).min(CLASSES - 1)] += 1;
    }
    let (digit, &most) = counts.iter().enumerate().max_by_key(|(_, &n)| n)?;
    (predictions.len() >= 10 && most * 10 >= predictions.len() * 9).then(|| {
        format!(
            "{most} of {} answers are the digit {digit}",
            predictions.len()
        )
    })
}

/// The one-line warning for degenerate answers, pointing at the probe.
pub fn degenerate_warning(why: &str) -> String {
    format!(
        "warning: {why}: the model may expect its pixels another way; \
         `runtime inspect --probe-input` tries each input convention"
    )
}

/// Float accuracy on `test` under each preset input convention (then the classifier's own, if
/// it is none of them), best first. The classifier's convention is restored after.
pub fn probe_conventions(
    classifier: &mut Classifier,
    test: &Dataset,
) -> Result<Vec<(String, f64)>, ModelError> {
    let own = classifier.input.clone();
    let mut candidates: Vec<(String, crate::convention::Convention)> = crate::convention::PRESETS
        .iter()
        .filter_map(|p| crate::convention::Convention::preset(p.0).map(|c| (p.0.to_string(), c)))
        .collect();
    if own.name().is_none() {
        candidates.push((format!("{} × p + {}", own.scale, own.offset), own.clone()));
    }
    let mut results = Vec::new();
    for (name, convention) in candidates {
        classifier.input = convention;
        let predictions = predict_all(classifier, test);
        let predictions = predictions.inspect_err(|_| classifier.input = own.clone())?;
        results.push((name, Report::new(test.labels(), &predictions).accuracy()));
    }
    classifier.input = own;
    results.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(results)
}

#[cfg(test)]
mod degenerate_tests {
    use super::degenerate;

    #[test]
    fn near_chance_or_one_digit_is_degenerate_and_a_good_run_is_not() {
        let varied: Vec<u8> = (0..100).map(|i| (i % 10) as u8).collect();
        assert_eq!(degenerate(&varied, Some(0.99)), None);
        assert!(degenerate(&varied, Some(0.09))
            .unwrap()
            .contains("near chance"));
        let mut mostly_two = vec![2u8; 95];
        mostly_two.extend([1, 3, 4, 5, 6]);
        assert_eq!(
            degenerate(&mostly_two, None).unwrap(),
            "95 of 100 answers are the digit 2"
        );
        assert_eq!(degenerate(&[7, 7, 7], None), None, "too few to tell");
    }
}
