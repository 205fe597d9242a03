//! The model `serve` answers with, made ready once: its float plan for one picture and its int8
//! twin for the host, or a model file alone.

use std::path::Path;

use mnist::PIXELS;

use crate::answers::{self, Answer, Int8, Int8File};
use crate::classifier::{Classifier, Plan};

/// The float model with its batch-1 plan (unless a model file is served alone), and the int8
/// model.
pub struct Models {
    /// The float model and its plan; `None` when serving a model file (`--model X.int8`).
    pub float: Option<(Classifier, Plan)>,
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
            float: Some((classifier, plan)),
            int8,
        })
    }

    /// Serves the model file `file` alone: int8 answers, on the host and the device.
    pub fn file(file: Int8File) -> Self {
        Self {
            float: None,
            int8: Ok(Int8::Given(file)),
        }
    }

    /// The float answer for one framed picture, if there is a float model.
    pub fn float(&self, image: &[u8; PIXELS]) -> Option<anyhow::Result<Answer>> {
        let (classifier, plan) = self.float.as_ref()?;
        Some(
            answers::float_with(classifier, plan, &[image])
                .and_then(|mut a| a.pop().ok_or_else(|| anyhow::anyhow!("no answer"))),
        )
    }

    /// The host int8 answer for one framed picture.
    pub fn int8(&self, image: &[u8; PIXELS]) -> anyhow::Result<Answer> {
        let mut answers = match &self.int8 {
            Ok(int8) => int8.answers(&[image])?,
            Err(why) => anyhow::bail!("{why}"),
        };
        answers.pop().ok_or_else(|| anyhow::anyhow!("no answer"))
    }

    /// What is served: the ONNX or the model file.
    pub fn path(&self) -> &Path {
        match (&self.float, &self.int8) {
            (Some((classifier, _)), _) => classifier.path(),
            (None, Ok(int8)) => &int8.file().path,
            (None, Err(_)) => Path::new("?"),
        }
    }
}
