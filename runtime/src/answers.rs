//! One framed picture's answer from each of the three ways Ember can run the network: float
//! through tract, int8 through the firmware's kernels on the host, and int8 on a device.

use std::path::Path;

use mnist::PIXELS;
use serde_json::json;

use crate::classifier::{argmax, one_line, softmax, Classifier, Plan};
use crate::device::Device;
use crate::quantize;

/// What one way of running the network made of one picture.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Class probabilities.
    pub probabilities: Vec<f32>,
    /// The predicted digit.
    pub digit: usize,
    /// The int8 logits (int8 paths only).
    pub logits: Option<[i8; 10]>,
    /// Instructions the inference took on the device (device only).
    pub instructions: Option<u32>,
    /// Instructions each layer took on the device, when it reports them (a max pool fused
    /// into the convolution before it counts only the measuring).
    pub layer_instructions: Option<Vec<u32>>,
}

impl Answer {
    fn new(probabilities: Vec<f32>, logits: Option<[i8; 10]>, instructions: Option<u32>) -> Self {
        Self {
            digit: argmax(&probabilities),
            probabilities,
            logits,
            instructions,
            layer_instructions: None,
        }
    }
}

/// Float answers through tract, one batch.
pub fn float(classifier: &Classifier, images: &[&[u8; PIXELS]]) -> anyhow::Result<Vec<Answer>> {
    if images.is_empty() {
        return Ok(Vec::new());
    }
    float_with(classifier, &classifier.plan(images.len())?, images)
}

/// Float answers through a plan made once (its batch must be `images.len()`), for a server
/// that answers many requests with one plan.
pub fn float_with(
    classifier: &Classifier,
    plan: &Plan,
    images: &[&[u8; PIXELS]],
) -> anyhow::Result<Vec<Answer>> {
    let pixels: Vec<u8> = images.iter().flat_map(|p| p.iter().copied()).collect();
    let outputs = plan.run(classifier.scale_pixels(&pixels)).map_err(|e| {
        anyhow::anyhow!(
            "{}: inference failed: {}",
            classifier.path().display(),
            one_line(&e)
        )
    })?;
    Ok(outputs
        .chunks_exact(10)
        .map(|row| Answer::new(classifier.probabilities(row), None, None))
        .collect())
}

/// The int8 model file of an ONNX model: the committed one when it was quantized from this
/// very ONNX, else the ONNX quantized with the defaults. The host runs it, and QEMU loads it
/// into the device's flash.
pub enum Int8 {
    /// The committed model file (`models/mnist_cnn.int8`), built into runtime.
    Committed(Int8File),
    /// The ONNX quantized with the defaults, calibrated on MNIST.
    Quantized(Int8File),
    /// A model file the user gave (`--model X.int8`).
    Given(Int8File),
}

impl Int8 {
    /// The committed model file for `classifier`, else `classifier` quantized with the
    /// defaults, calibrated on the MNIST found from `data`.
    pub fn for_model(classifier: &Classifier, data: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(file) = crate::embedded::int8_file(&classifier.sha256) {
            return Ok(Int8::Committed(file?));
        }
        let q = quantize::quantize_mnist(
            classifier,
            &mnist::data_dir(data)?,
            quantize::DEFAULT_CALIB_COUNT,
            quantize::DEFAULT_CALIB_SEED,
        )?;
        let from = compiler::Provenance::from_hex(&classifier.sha256)
            .ok_or_else(|| anyhow::anyhow!("the model's SHA-256 is not 64 hex digits"))?;
        let name = format!("{} (quantized)", classifier.path().display());
        Ok(Int8::Quantized(Int8File::from_bytes(
            name.into(),
            &compiler::write(&q, &from),
        )?))
    }

    /// The model file, kept.
    pub fn into_file(self) -> Int8File {
        match self {
            Int8::Committed(file) | Int8::Quantized(file) | Int8::Given(file) => file,
        }
    }

    /// The model file.
    pub fn file(&self) -> &Int8File {
        match self {
            Int8::Committed(file) | Int8::Quantized(file) | Int8::Given(file) => file,
        }
    }

    /// Its answers through the firmware's kernels on the host.
    pub fn answers(&self, images: &[&[u8; PIXELS]]) -> anyhow::Result<Vec<Answer>> {
        self.file().answers(images)
    }

    /// `f` of its firmware model.
    pub fn with_model<R>(&self, f: impl FnOnce(&firmware::Model) -> R) -> anyhow::Result<R> {
        self.file().with_model(f)
    }
}

/// Int8 answers of `model` through the firmware's kernels on the host.
fn run_int8(model: &firmware::Model, images: &[&[u8; PIXELS]]) -> anyhow::Result<Vec<Answer>> {
    let int8 = |e: firmware::Error| anyhow::anyhow!("int8 model: {e:?}");
    // Checked once, as the device checks it at start; each run checks only its input.
    let checked = model.check::<firmware::kernels::All>().map_err(int8)?;
    let mut arena = vec![0i8; model.arena_bytes];
    images
        .iter()
        .map(|image| {
            let out = checked
                .run(&image[..], &mut arena, |_, _| {})
                .map_err(int8)?;
            Ok(Answer::new(softmax(&out.scores), Some(out.logits), None))
        })
        .collect()
}

/// Answers from a device, one request per picture.
pub fn device(device: &mut Device, images: &[&[u8; PIXELS]]) -> anyhow::Result<Vec<Answer>> {
    images
        .iter()
        .map(|image| {
            let c = device.classify(&image[..])?;
            let scores = device.info.scores(&c.logits);
            let mut answer = Answer::new(softmax(&scores), Some(c.logits), Some(c.instructions));
            answer.layer_instructions = (!c.layers().is_empty()).then(|| c.layers().to_vec());
            Ok(answer)
        })
        .collect()
}

/// Refuses a device whose model is not the classifier's ONNX file: its answers would not be
/// the ones the desktop paths give.
pub fn check_model(device: &Device, classifier: &Classifier) -> anyhow::Result<()> {
    check_sha(device, &classifier.sha256, classifier.path())
}

/// Refuses a device whose model was not compiled from the ONNX with SHA-256 `sha256`, which
/// `model` (named in the message) was.
pub fn check_sha(device: &Device, sha256: &str, model: &Path) -> anyhow::Result<()> {
    let runs = &device.info.model_sha256;
    if sha256 != runs {
        anyhow::bail!(
            "{} runs model {}…, but {} is {}…: put its model file on the device, or pass the \
             model the device runs with --model",
            device.name(),
            runs.get(..16).unwrap_or(runs),
            model.display(),
            sha256.get(..16).unwrap_or(sha256)
        );
    }
    Ok(())
}

/// One picture's answers as JSON, what `classify --json` prints and `serve` answers: the first
/// way's digit, probability and top 3 at the top level, every way under its name (with its ten
/// probabilities), the ways that failed under theirs with the reason, whether the ways agree,
/// and the framed 28×28 input the network saw as a PNG data URL.
pub fn to_json(
    framed: &[u8; PIXELS],
    ways: &[(&str, &Answer)],
    failed: &[(&str, String)],
) -> serde_json::Value {
    let mut v = json!({"input": png_data_url(framed)});
    if let Some((_, first)) = ways.first() {
        let mut order: Vec<usize> = (0..10).collect();
        order.sort_by(|&a, &b| first.probabilities[b].total_cmp(&first.probabilities[a]));
        let top3: Vec<_> = order[..3]
            .iter()
            .map(|&d| json!({"digit": d, "probability": first.probabilities[d]}))
            .collect();
        v["digit"] = json!(first.digit);
        v["probability"] = json!(first.probabilities[first.digit]);
        v["top3"] = json!(top3);
        v["agree"] = json!(ways.iter().all(|(_, a)| a.digit == first.digit));
    }
    for (name, a) in ways {
        v[*name] = json!({"digit": a.digit, "probability": a.probabilities[a.digit],
            "probabilities": a.probabilities, "logits": a.logits, "instructions": a.instructions,
            "layer_instructions": a.layer_instructions});
    }
    for (name, reason) in failed {
        v[*name] = json!({ "error": reason });
    }
    v
}

/// A 28×28 grey picture as a `data:image/png;base64,…` URL.
pub fn png_data_url(pixels: &[u8; PIXELS]) -> String {
    use base64::Engine;
    use image::ImageEncoder;
    let mut png = Vec::new();
    // Encoding 784 grey bytes into a Vec cannot fail.
    let _ = image::codecs::png::PngEncoder::new(&mut png).write_image(
        pixels,
        28,
        28,
        image::ExtendedColorType::L8,
    );
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

/// The largest arena the host allocates for a model file: a hostile file cannot make it
/// allocate more.
pub const MAX_HOST_ARENA: usize = 64 << 20;

/// A model file (`X.int8`, written by `runtime quantize`) loaded on the host: run on the
/// firmware's kernels, as the device runs it, with no tract and no calibration.
pub struct Int8File {
    /// Where it was read from.
    pub path: std::path::PathBuf,
    /// Its bytes.
    pub bytes: compiler::ModelBytes,
    /// SHA-256 of the ONNX it was compiled from, hex.
    pub sha256: String,
}

impl Int8File {
    /// The model file at `path`, checked; `None` if `path` is not a model file (no `EMB8`
    /// magic), so that the caller reads it as ONNX.
    pub fn load(path: &Path) -> anyhow::Result<Option<Self>> {
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
        if !bytes.starts_with(&firmware::file::MAGIC) {
            return Ok(None);
        }
        Self::from_bytes(path.to_path_buf(), &bytes).map(Some)
    }

    /// The model file `bytes`, checked, named `path` in messages.
    pub fn from_bytes(path: std::path::PathBuf, bytes: &[u8]) -> anyhow::Result<Self> {
        let bytes = compiler::ModelBytes::new(bytes);
        let (sha256, arena) = bytes
            .with(|f| {
                let mut hex = [0u8; 64];
                (
                    f.header.sha256_hex(&mut hex).to_string(),
                    f.header.arena_bytes,
                )
            })
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if arena > MAX_HOST_ARENA {
            anyhow::bail!(
                "{}: the model needs {arena} bytes of arena; Ember runs at most {MAX_HOST_ARENA}",
                path.display()
            );
        }
        Ok(Int8File {
            path,
            bytes,
            sha256,
        })
    }

    /// `f` of its firmware model.
    pub fn with_model<R>(&self, f: impl FnOnce(&firmware::Model) -> R) -> anyhow::Result<R> {
        self.bytes
            .with(|file| f(&file.model))
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.path.display()))
    }

    /// Its answers for framed pictures.
    pub fn answers(&self, images: &[&[u8; PIXELS]]) -> anyhow::Result<Vec<Answer>> {
        self.with_model(|model| run_int8(model, images))?
    }

    /// The int8 logits of each input, on every core (the model is checked once; each thread
    /// runs its share in an arena of its own).
    pub fn logits<'i>(
        &self,
        inputs: impl Iterator<Item = &'i [u8]>,
    ) -> anyhow::Result<Vec<[i8; 10]>> {
        let inputs: Vec<&[u8]> = inputs.collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let share = inputs.len().div_ceil(threads).max(1);
        self.with_model(|model| {
            let checked = model.check::<firmware::kernels::All>()?;
            let run = |part: &[&[u8]]| {
                let mut arena = vec![0i8; model.arena_bytes];
                part.iter()
                    .map(|x| checked.run(x, &mut arena, |_, _| {}).map(|o| o.logits))
                    .collect::<Result<Vec<_>, _>>()
            };
            std::thread::scope(|s| {
                let parts: Vec<_> = inputs
                    .chunks(share)
                    .map(|p| s.spawn(move || run(p)))
                    .collect();
                let mut all = Vec::with_capacity(inputs.len());
                for part in parts {
                    all.extend(
                        part.join()
                            .unwrap_or_else(|e| std::panic::resume_unwind(e))?,
                    );
                }
                Ok(all)
            })
        })?
        .map_err(|e: firmware::Error| anyhow::anyhow!("{}: {e}", self.path.display()))
    }
}
