//! The model `serve` answers with, made ready once: its float plan for one picture and its int8
//! twin for the host.

use std::path::Path;

use mnist::PIXELS;

use crate::answers::{self, Answer};
use crate::classifier::{Classifier, Plan};
use crate::{embedded, quantize};

/// How the host's int8 answer is made.
pub enum Int8 {
    /// The committed int8 model (the one the firmware embeds).
    Committed(&'static firmware::Model<'static>),
    /// The model quantized at start-up, calibrated on MNIST.
    Quantized(Box<quantize::QuantModel>),
    /// No int8 model: why.
    Unavailable(String),
}

/// The model, its batch-1 plan and its int8 twin.
pub struct Models {
    /// The float model.
    pub classifier: Classifier,
    plan: Plan,
    /// The host int8 model.
    pub int8: Int8,
}

impl Models {
    /// Makes `classifier` ready to serve: its plan, and its int8 model (the committed one, or
    /// quantized with the defaults when MNIST is found from `data`, else none, with the reason).
    pub fn new(classifier: Classifier, data: Option<&Path>) -> anyhow::Result<Self> {
        let plan = classifier.plan(1)?;
        let int8 = match embedded::int8_model(&classifier.sha256) {
            Some(model) => Int8::Committed(model),
            None => match mnist::data_dir(data)
                .map_err(anyhow::Error::from)
                .and_then(|dir| {
                    quantize::quantize_mnist(
                        &classifier,
                        &dir,
                        quantize::DEFAULT_CALIB_COUNT,
                        quantize::DEFAULT_CALIB_SEED,
                    )
                }) {
                Ok(q) => Int8::Quantized(Box::new(q)),
                Err(e) => Int8::Unavailable(format!("no host int8 model: {e:#}")),
            },
        };
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
            Int8::Committed(model) => answers::run_int8(model, &[image])?,
            Int8::Quantized(q) => {
                let layers = q.firmware_layers();
                answers::run_int8(&q.firmware_model(&layers), &[image])?
            }
            Int8::Unavailable(why) => anyhow::bail!("{why}"),
        };
        answers.pop().ok_or_else(|| anyhow::anyhow!("no answer"))
    }
}
