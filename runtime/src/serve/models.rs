//! The model `serve` answers with, made ready once: its float plan for one picture and its int8
//! twin for the host.

use std::path::Path;

use mnist::PIXELS;

use crate::answers::{self, Answer, Int8};
use crate::classifier::{Classifier, Plan};

/// The model, its batch-1 plan and its int8 twin.
pub struct Models {
    /// The float model.
    pub classifier: Classifier,
    plan: Plan,
    /// The host int8 model, or why there is none.
    pub int8: Result<Int8, String>,
}

impl Models {
    /// Makes `classifier` ready to serve: its plan, and its int8 model ([`Int8::for_model`],
    /// else why there is none).
    pub fn new(classifier: Classifier, data: Option<&Path>) -> anyhow::Result<Self> {
        let plan = classifier.plan(1)?;
        let int8 =
            Int8::for_model(&classifier, data).map_err(|e| format!("no host int8 model: {e:#}"));
        Ok(Self {
            classifier,
            plan,
            int8,
        })
    }

    /// The float answer for one framed picture.
    pub fn float(&self, image: &[u8; PIXELS]) -> anyhow::Result<Answer> {
        let mut answers = answers::float_with(&self.classifier, &self.plan, &[image])?;
        answers.pop().ok_or_else(|| anyhow::anyhow!("no answer"))
    }

    /// The host int8 answer for one framed picture.
    pub fn int8(&self, image: &[u8; PIXELS]) -> anyhow::Result<Answer> {
        let mut answers = match &self.int8 {
            Ok(int8) => int8.answers(&[image])?,
            Err(why) => anyhow::bail!("{why}"),
        };
        answers.pop().ok_or_else(|| anyhow::anyhow!("no answer"))
    }
}
