//! `runtime`: classify pictures of digits, evaluate and benchmark ONNX classifiers with tract.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use mnist::{Split, PIXELS};
use runtime::answers::{self, Answer};
use runtime::classifier::Classifier;
use runtime::convention::{self, Convention};
use runtime::device::qemu::Fit;
use runtime::device::{Board, Device};
use runtime::{embedded, eval, inspect, preprocess, quantize, serve};
use serde_json::json;

/// Run ONNX digit classifiers on the desktop with tract.
///
/// Any ONNX classifier with one 28×28 grey input ([N,1,28,28], [N,28,28,1], [N,28,28] or
/// [N,784]) and 10 outputs works; the default is Ember's own model.
#[derive(Parser)]
#[command(name = "runtime", version = env!("EMBER_VERSION"), about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Which model, and how its input is fed.
#[derive(clap::Args)]
struct ModelArgs {
    /// The ONNX model [default: Ember's MNIST CNN, embedded in runtime].
    #[arg(long)]
    model: Option<PathBuf>,
    /// How pixels 0..255 are fed: unit (pixel/255), raw (0..255), mnist-norm
    /// ((pixel/255 - 0.1307)/0.3081) or signed (-1..1) [default: the model's metadata, else
    /// unit].
    #[arg(long = "input", value_name = "PRESET", value_parser = preset_names())]
    input: Option<String>,
    /// Feed pixel × S + O instead of a preset: S here, O with --input-offset.
    #[arg(long, value_name = "S", conflicts_with = "input")]
    input_scale: Option<f32>,
    /// See --input-scale [default: 0].
    #[arg(
        long,
        value_name = "O",
        conflicts_with = "input",
        requires = "input_scale"
    )]
    input_offset: Option<f32>,
}

fn preset_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(convention::PRESETS.map(|p| p.0))
}

impl ModelArgs {
    /// The convention the flags give, if they give one.
    fn convention(&self) -> anyhow::Result<Option<Convention>> {
        if let Some(name) = &self.input {
            return Ok(Convention::preset(name));
        }
        let Some(scale) = self.input_scale else {
            return Ok(None);
        };
        let offset = self.input_offset.unwrap_or(0.0);
        if !(scale.is_finite() && scale != 0.0 && offset.is_finite()) {
            anyhow::bail!(
                "--input-scale {scale} --input-offset {offset}: must be finite, the scale not 0"
            );
        }
        Ok(Some(Convention {
            scale,
            offset,
            source: convention::Source::Flag,
        }))
    }

    /// The model file (`X.int8`) --model names, if it names one (by its magic, whatever its
    /// extension); the input flags do not apply to it (its convention is inside).
    fn model_file(&self) -> anyhow::Result<Option<answers::Int8File>> {
        let Some(path) = &self.model else {
            return Ok(None);
        };
        let file = answers::Int8File::load(path)?;
        if file.is_some() && (self.input.is_some() || self.input_scale.is_some()) {
            anyhow::bail!(
                "{}: a model file carries its input convention; --input and --input-scale take an ONNX model",
                path.display()
            );
        }
        Ok(file)
    }

    /// The model, fed as the flags say (else as its metadata says, else `unit`).
    fn load(&self) -> anyhow::Result<Classifier> {
        let mut classifier = embedded::classifier(self.model.as_deref())?;
        if let Some(convention) = self.convention()? {
            classifier.input = convention;
        }
        Ok(classifier)
    }
}

/// Which microcontroller, and how it is reached.
#[derive(clap::Args)]
struct DeviceArgs {
    /// Also run on a microcontroller running the inference service (`bench` times round trips
    /// to it instead): `qemu` (Cortex-M4F), `qemu:m0`, `qemu:m3`, `qemu:m4`, `qemu:m7` or
    /// `qemu:m33` start it in QEMU with the model file in its flash (`qemu-pty[:BOARD]` with its
    /// UART on a pseudo-terminal); a path such as /dev/ttyACM0 is a board's serial port, whose
    /// board runs the model file flashed on it.
    #[arg(long)]
    device: Option<String>,
    /// Baud rate of a serial --device.
    #[arg(long, default_value_t = 115_200)]
    baud: u32,
    /// The inference service's ELF for --device qemu (default: the one built into runtime;
    /// QEMU loads the model file into the board's flash beside it).
    #[arg(long)]
    firmware: Option<PathBuf>,
}

impl DeviceArgs {
    /// Whether --device starts QEMU, which needs the model file to load.
    fn is_qemu(&self) -> bool {
        self.device
            .as_deref()
            .is_some_and(|d| d.starts_with("qemu"))
    }

    /// The device the flags name, connected, waiting `timeout` seconds for each answer and
    /// reconnecting up to `retries` times per request; `None` without --device. In QEMU it
    /// runs `file` (default: the committed model file).
    fn open(
        &self,
        file: Option<&answers::Int8File>,
        timeout: f64,
        retries: u32,
    ) -> anyhow::Result<Option<Device>> {
        let Some(spec) = &self.device else {
            return Ok(None);
        };
        let timeout = seconds(timeout)?;
        let firmware = self.firmware.as_deref();
        let mut device = runtime::device::open(spec, self.baud, firmware, file, timeout)?;
        device.set_retries(retries);
        Ok(Some(device))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Classify pictures of digits (PNG, JPEG, BMP, GIF, TIFF, WebP; any size or colour).
    ///
    /// Each picture is framed as MNIST digits are: background detected (dark ink on light
    /// paper is inverted), cropped to the ink, scaled to 20 px, centred by mass in 28×28.
    Classify {
        #[command(flatten)]
        model: ModelArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Run the int8 model through the firmware's kernels (quantized with the defaults).
        #[arg(long)]
        int8: bool,
        /// Folder holding the MNIST files, to calibrate --int8 for a model other than the
        /// embedded one [default: $EMBER_DATA, else ./data/mnist].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Write the 28×28 input the network saw to this PNG (one picture only).
        #[arg(long)]
        save_input: Option<PathBuf>,
        #[command(flatten)]
        device: DeviceArgs,
        /// Seconds to wait for each answer from --device.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
        /// After a fault, reconnect to --device up to N times per picture and send it again.
        #[arg(long, default_value_t = 0)]
        retries: u32,
        /// Print the float (tract), host int8 and device answers side by side.
        #[arg(long)]
        compare: bool,
        /// Pictures, or folders of pictures.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Accuracy on the 10,000 MNIST test images, confusion matrix and the mistakes as PNGs.
    Eval {
        #[command(flatten)]
        model: ModelArgs,
        /// Folder holding the MNIST files [default: $EMBER_DATA, else ./data/mnist].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Evaluate the int8 model through the firmware's kernels (quantized with the defaults).
        #[arg(long)]
        int8: bool,
        /// Folder for confusion.png and mistakes.png.
        #[arg(long, default_value = "runs/eval")]
        out: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Single-image latency (p50/p90/p99) and throughput per batch size, one thread.
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        /// Batch sizes for throughput.
        #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
        batch: Vec<usize>,
        /// Timed single-image runs (after 200 warm-up runs).
        #[arg(long, default_value_t = 5000)]
        runs: usize,
        /// Folder holding the MNIST files, whose test digits are the inputs [default:
        /// $EMBER_DATA, else ./data/mnist].
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        device: DeviceArgs,
        /// Round trips to time on --device.
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// Print where tract spends a run instead: the time of each node of its optimized
        /// plan, at this batch size.
        #[arg(long, value_name = "BATCH", conflicts_with = "device")]
        profile: Option<usize>,
        /// Soak --device instead: inject a fault every N requests, alternately killing QEMU
        /// mid-request and sending two requests back to back, and count answers, losses and
        /// wrong answers (checked against the host's int8 logits).
        #[arg(long, value_name = "N")]
        faults: Option<usize>,
        /// After a fault, reconnect to --device up to N times per request and send it again.
        #[arg(long, default_value_t = 0)]
        retries: u32,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Compile the ONNX model to Ember's int8 model file (NAME.int8), and report its cost.
    ///
    /// Calibrates activation ranges on training images through the float graph, quantizes
    /// weights per channel, prints a per-layer table, and measures float vs int8 accuracy on the
    /// 10,000 test images by running the firmware's kernels on the host.
    Quantize {
        #[command(flatten)]
        model: ModelArgs,
        /// Folder holding the MNIST files: training images calibrate, test images measure
        /// [default: $EMBER_DATA, else ./data/mnist].
        #[arg(long)]
        calib: Option<PathBuf>,
        /// Training images used for calibration, drawn with --seed.
        #[arg(long, default_value_t = quantize::DEFAULT_CALIB_COUNT)]
        calib_count: usize,
        /// Seed of the calibration sample.
        #[arg(long, default_value_t = quantize::DEFAULT_CALIB_SEED)]
        seed: u64,
        /// The model file to write [default: beside the model, NAME.int8]; a path ending in
        /// `.rs` gets the model as Rust source instead (for a firmware that compiles it in).
        /// Only the default also records the int8 figures in the model card beside the model.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Refuse the model, before writing anything, unless its parameters plus the service's
        /// code fit this board's flash and its arena plus stack fit its RAM: m3 or m4.
        #[arg(long, value_name = "BOARD")]
        target: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Inputs, outputs, operators, parameters, and whether Ember's int8 firmware can run it.
    Inspect {
        #[command(flatten)]
        model: ModelArgs,
        /// Run 1,000 MNIST test digits under each input convention and recommend the best.
        #[arg(long)]
        probe_input: bool,
        /// Folder holding the MNIST files, for --probe-input [default: $EMBER_DATA, else
        /// ./data/mnist].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Serve a page to draw a digit on (or drop a photo) that shows the framed input and the
    /// float, host int8 and device answers side by side, with the JSON API behind it (a model
    /// file, `--model X.int8`, gives the int8 answers alone).
    ///
    /// `POST /api/classify` takes a picture's bytes and answers as `classify --json` does;
    /// `GET /api/model` answers as `inspect --json` does, with the model card; `GET /healthz`.
    Serve {
        #[command(flatten)]
        model: ModelArgs,
        /// Address to listen on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        #[command(flatten)]
        device: DeviceArgs,
        /// Seconds to wait for each answer from --device.
        #[arg(long, default_value_t = 5.0)]
        timeout: f64,
        /// After a fault, reconnect to --device up to N times per picture and send it again.
        #[arg(long, default_value_t = 1)]
        retries: u32,
        /// Folder holding the MNIST files, to quantize a model other than the embedded one for
        /// the host int8 answer [default: $EMBER_DATA, else ./data/mnist].
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Write a copy of an ONNX model that states its input convention in its metadata, so
    /// that every later command (and the quantizer) feeds it right without flags.
    ///
    /// Only the metadata changes: the graph and the weights are copied byte for byte.
    Annotate {
        #[command(flatten)]
        model: ModelArgs,
        /// The ONNX file to write.
        #[arg(short, long)]
        output: PathBuf,
    },
}

fn main() -> ExitCode {
    // Output piped into `head` ends quietly, as other command-line tools do (SIGPIPE stays
    // ignored: writing to a dead QEMU must be an error, not the end of the process). Any other
    // panic is a bug in Ember: one line, no backtrace.
    std::panic::set_hook(Box::new(|info| {
        let message = info.payload_as_str().unwrap_or_default();
        if message.starts_with("failed printing to stdout") {
            std::process::exit(0);
        }
        eprintln!("error: internal error, please report it: {info}");
    }));
    match run(Cli::parse().command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Classify {
            model,
            json,
            int8,
            data,
            save_input,
            device,
            timeout,
            retries,
            compare,
            images,
        } => {
            if let Some(file) = model.model_file()? {
                if compare {
                    anyhow::bail!("{}: --compare takes an ONNX --model, to set tract's float answer beside the int8 ones", file.path.display());
                }
                let device = device.open(Some(&file), timeout, retries)?;
                let how = How {
                    int8: device.is_none(),
                    data,
                    compare,
                    device,
                    host: None,
                };
                let mut answering = |how: &mut How, images: &[&[u8; PIXELS]]| {
                    let mut ways = Vec::new();
                    if let Some(device) = how.device.as_mut() {
                        answers::check_sha(device, &file.sha256, &file.path)?;
                        ways.push(("device", answers::device(device, images)?));
                    }
                    ways.push(("host-int8", file.answers(images)?));
                    Ok(ways)
                };
                return classify(&mut answering, json, how, save_input.as_deref(), &images);
            }
            let classifier = model.load()?;
            // QEMU loads the model file: made once, and the host's int8 answer runs it too.
            let host = match device.is_qemu() {
                true => Some(answers::Int8::for_model(&classifier, data.as_deref())?.into_file()),
                false => None,
            };
            let device = device.open(host.as_ref(), timeout, retries)?;
            let how = How {
                int8,
                data,
                compare,
                device,
                host,
            };
            let mut answering =
                |how: &mut How, images: &[&[u8; PIXELS]]| all_answers(&classifier, how, images);
            classify(&mut answering, json, how, save_input.as_deref(), &images)
        }
        Command::Eval {
            model,
            data,
            int8,
            out,
            json,
        } => match model.model_file()? {
            Some(file) => evaluate_file(&file, &mnist::data_dir(data.as_deref())?, &out, json),
            None => evaluate(
                &model.load()?,
                &mnist::data_dir(data.as_deref())?,
                int8,
                &out,
                json,
            ),
        },
        Command::Quantize {
            model,
            calib,
            calib_count,
            seed,
            output,
            target,
            json,
        } => {
            let target = target.as_deref().map(Board::named).transpose()?;
            quantize_command(
                &model.load()?,
                &mnist::data_dir(calib.as_deref())?,
                (calib_count, seed),
                output.as_deref(),
                target,
                json,
            )
        }
        Command::Bench {
            model,
            batch,
            runs,
            data,
            device: device @ DeviceArgs {
                device: Some(_), ..
            },
            requests,
            faults,
            retries,
            json,
            ..
        } => {
            let file = match model.model_file()? {
                Some(file) => file,
                None => answers::Int8::for_model(&model.load()?, data.as_deref())?.into_file(),
            };
            let mut device = device
                .open(Some(&file), 10.0, retries)?
                .context("bench: no --device to time")?;
            answers::check_sha(&device, &file.sha256, &file.path)?;
            let test = mnist::load(&mnist::data_dir(data.as_deref())?, Split::Test)?;
            let _ = (batch, runs);
            if let Some(every) = faults {
                return soak(&file, &mut device, &test, requests, every, json);
            }
            let report = runtime::bench::device(&mut device, test.pixels(), requests)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            model,
            runs,
            data,
            profile: Some(batch),
            json,
            ..
        } => {
            let classifier = model.load()?;
            let test = mnist::load(&mnist::data_dir(data.as_deref())?, Split::Test)?;
            let inputs = classifier.scale_pixels(test.pixels());
            let rows = runtime::bench::profile(&classifier, &inputs, batch.max(1), runs.max(1000))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", runtime::bench::profile_text(&rows));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            model,
            batch,
            runs,
            data,
            json,
            ..
        } => match model.model_file()? {
            Some(file) => bench_file(&file, runs, &mnist::data_dir(data.as_deref())?, json),
            None => bench(
                &model.load()?,
                &batch,
                runs,
                &mnist::data_dir(data.as_deref())?,
                json,
            ),
        },
        Command::Inspect {
            model,
            probe_input,
            data,
            json,
        } => match model.model_file()? {
            Some(file) => inspect_file(&file, json),
            None => inspect_command(&model, probe_input, data.as_deref(), json),
        },
        Command::Annotate { model, output } => annotate_command(&model, &output),
        Command::Serve {
            model,
            addr,
            device,
            timeout,
            retries,
            data,
        } => {
            let models = match model.model_file()? {
                Some(file) => serve::Models::file(file),
                None => serve::Models::new(model.load()?, data.as_deref())?,
            };
            if let Err(why) = &models.int8 {
                eprintln!("warning: {why}; the page shows float answers only");
            }
            let file = models.int8.as_ref().ok().map(answers::Int8::file);
            if device.is_qemu() && file.is_none() {
                anyhow::bail!("--device qemu: no model file to load into the device");
            }
            let device = match device.open(file, timeout, retries)? {
                Some(device) => {
                    match (&models.float, file) {
                        (Some((classifier, _)), _) => answers::check_model(&device, classifier)?,
                        (None, Some(f)) => answers::check_sha(&device, &f.sha256, &f.path)?,
                        (None, None) => {}
                    }
                    // Each try may take the timeout, and each reconnect up to 10 s of pings.
                    let wait = (seconds(timeout)? + Duration::from_secs(10)) * (retries + 1);
                    Some(serve::DeviceQueue::start(device, serve::DEVICE_QUEUE, wait))
                }
                None => None,
            };
            let name = models.path().display().to_string();
            let on = device
                .as_ref()
                .map(|d| format!(", device {}", d.name))
                .unwrap_or_default();
            let app = serve::App::new(models, device)?;
            let ready = |bound| println!("serving {name}{on} on http://{bound}/ (Ctrl-C stops)");
            serve::run(app, addr, ready, serve::interrupted())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff", "webp"];

/// The files to classify: files as given, folders expanded to their pictures (sorted).
fn expand(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("{}: cannot list folder", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_lowercase().as_str()))
                })
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

/// Preprocesses `files` on every core; results in input order.
fn preprocess_all(files: &[PathBuf]) -> Vec<Result<[u8; PIXELS], preprocess::PreprocessError>> {
    preprocess::on_all_cores(files, |f| preprocess::load(f))
}

/// Which ways of running the network `classify` uses.
struct How {
    /// The answer printed is the host int8 one.
    int8: bool,
    /// Where MNIST is, to calibrate the host int8 model when it must be quantized.
    data: Option<PathBuf>,
    /// Print every way's answer side by side.
    compare: bool,
    /// The answer printed is this device's.
    device: Option<Device>,
    /// The host's int8 model file, once made.
    host: Option<answers::Int8File>,
}

/// A `--timeout` in seconds as a duration.
fn seconds(s: f64) -> anyhow::Result<Duration> {
    if !(s.is_finite() && s > 0.0) {
        anyhow::bail!("--timeout {s}: must be a positive number of seconds");
    }
    Ok(Duration::from_secs_f64(s))
}

/// Every way's answers for the framed pictures: the one printed first, then (with --compare)
/// the others, each with its name.
fn all_answers(
    classifier: &Classifier,
    how: &mut How,
    images: &[&[u8; PIXELS]],
) -> anyhow::Result<Vec<(&'static str, Vec<Answer>)>> {
    let mut ways = Vec::new();
    if let Some(device) = how.device.as_mut() {
        answers::check_model(device, classifier)?;
        ways.push(("device", answers::device(device, images)?));
    }
    if how.int8 || how.compare {
        let host = match how.host.take() {
            Some(host) => host,
            None => answers::Int8::for_model(classifier, how.data.as_deref())?.into_file(),
        };
        ways.push(("host-int8", host.answers(images)?));
        how.host = Some(host);
    }
    if !(how.int8 || how.device.is_some()) || how.compare {
        ways.push(("float", answers::float(classifier, images)?));
    }
    Ok(ways)
}

/// Who answers for a batch of framed pictures: every way, each with its name.
type Answering<'a> =
    dyn FnMut(&mut How, &[&[u8; PIXELS]]) -> anyhow::Result<Vec<(&'static str, Vec<Answer>)>> + 'a;

fn classify(
    answering: &mut Answering,
    json: bool,
    mut how: How,
    save_input: Option<&Path>,
    inputs: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let files = expand(inputs)?;
    if save_input.is_some() && files.len() != 1 {
        anyhow::bail!(
            "--save-input takes exactly one picture, {} were given",
            files.len()
        );
    }
    let framed = preprocess_all(&files);
    let ok: Vec<&[u8; PIXELS]> = framed.iter().filter_map(|r| r.as_ref().ok()).collect();
    let ways = answering(&mut how, &ok)?;
    if let Some((_, answers)) = ways.first() {
        let digits: Vec<u8> = answers.iter().map(|a| a.digit as u8).collect();
        if let Some(why) = eval::degenerate(&digits, None) {
            eprintln!("{}", eval::degenerate_warning(&why));
        }
    }
    if let (Some(device), false) = (&how.device, json) {
        let i = &device.info;
        println!(
            "device {}: firmware {} ({}), model {}…",
            device.name(),
            i.firmware_version,
            i.target,
            &i.model_sha256.get(..16).unwrap_or("")
        );
    }
    let (mut failed, mut next, mut results) = (0, 0, Vec::new());
    for (file, result) in files.iter().zip(&framed) {
        let pixels = match result {
            Ok(pixels) => pixels,
            Err(e) => {
                failed += 1;
                eprintln!("error: {}: {e}", file.display());
                results.push(json!({"file": file, "error": e.to_string()}));
                continue;
            }
        };
        if let Some(out) = save_input {
            save_28x28(pixels, out)?;
        }
        let row: Vec<(&str, &Answer)> = ways.iter().map(|(name, a)| (*name, &a[next])).collect();
        next += 1;
        if !json {
            println!("{}", answer_line(file, &row, how.compare));
        }
        let mut v = answers::to_json(pixels, &row, &[]);
        v["file"] = json!(file);
        results.push(v);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One picture's line: the first way's digit, confidence and top 3 (plus the device's
/// instructions), or with --compare every way's digit side by side.
fn answer_line(file: &Path, row: &[(&str, &Answer)], compare: bool) -> String {
    let (_, first) = row[0];
    let cost = |a: &Answer| {
        a.instructions
            .map(|n| format!("   {} instructions", thousands(n as u64)))
            .unwrap_or_default()
    };
    if compare {
        let cols: Vec<String> = row
            .iter()
            .map(|(name, a)| {
                let p = 100.0 * a.probabilities[a.digit];
                format!("{name} {} ({p:.1}%)", a.digit)
            })
            .collect();
        let logits: Vec<&[i8; 10]> = row.iter().filter_map(|(_, a)| a.logits.as_ref()).collect();
        let same = match logits.as_slice() {
            [a, b] if a == b => "   int8 logits identical",
            [_, _] => "   int8 logits DIFFER",
            _ => "",
        };
        return format!(
            "{}: {}{}{same}",
            file.display(),
            cols.join("   "),
            cost(first)
        );
    }
    let mut order: Vec<usize> = (0..10).collect();
    order.sort_by(|&a, &b| first.probabilities[b].total_cmp(&first.probabilities[a]));
    let top: Vec<String> = order[..3]
        .iter()
        .map(|&d| format!("{d} {:.1}%", 100.0 * first.probabilities[d]))
        .collect();
    format!(
        "{}: {} ({:.1}%)   top 3: {}{}",
        file.display(),
        first.digit,
        100.0 * first.probabilities[first.digit],
        top.join(", "),
        cost(first)
    )
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn save_28x28(pixels: &[u8; PIXELS], path: &Path) -> anyhow::Result<()> {
    image::save_buffer(path, pixels, 28, 28, image::ExtendedColorType::L8)
        .with_context(|| format!("{}: cannot write", path.display()))
}

fn evaluate(
    classifier: &Classifier,
    data: &Path,
    int8: bool,
    out: &Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let test = mnist::load(data, Split::Test)?;
    let started = Instant::now();
    let predictions = if int8 {
        let q = quantize::quantize_mnist(
            classifier,
            data,
            quantize::DEFAULT_CALIB_COUNT,
            quantize::DEFAULT_CALIB_SEED,
        )?;
        quantize::simulate(&q, &test)
            .map_err(|e| anyhow::anyhow!("{}: the int8 model: {e}", classifier.path().display()))?
            .iter()
            .map(|l| runtime::classifier::argmax(l) as u8)
            .collect()
    } else {
        eval::predict_all(classifier, &test)?
    };
    let seconds = started.elapsed().as_secs_f64();
    let kind = if int8 {
        ", int8 (firmware kernels)"
    } else {
        ""
    };
    let evaluated = Evaluated {
        model: classifier.path(),
        sha256: &classifier.sha256,
        kind,
        seconds,
    };
    eval_report(&evaluated, &test, &predictions, out, json)
}

/// `eval` of a model file: its int8 model on the firmware's kernels, no tract, no calibration.
fn evaluate_file(
    file: &answers::Int8File,
    data: &Path,
    out: &Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let test = mnist::load(data, Split::Test)?;
    let started = Instant::now();
    let predictions: Vec<u8> = file
        .logits(test.pixels().chunks_exact(PIXELS))?
        .iter()
        .map(|l| runtime::classifier::argmax(l) as u8)
        .collect();
    let evaluated = Evaluated {
        model: &file.path,
        sha256: &file.sha256,
        kind: ", int8 model file (firmware kernels)",
        seconds: started.elapsed().as_secs_f64(),
    };
    eval_report(&evaluated, &test, &predictions, out, json)
}

/// What was evaluated, for the report.
struct Evaluated<'a> {
    model: &'a Path,
    sha256: &'a str,
    kind: &'a str,
    seconds: f64,
}

/// Prints `eval`'s report and writes its pictures.
fn eval_report(
    e: &Evaluated,
    test: &mnist::Dataset,
    predictions: &[u8],
    out: &Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (seconds, kind) = (e.seconds, e.kind);
    let report = eval::Report::new(test.labels(), predictions);
    if let Some(why) = eval::degenerate(predictions, Some(report.accuracy())) {
        eprintln!("{}", eval::degenerate_warning(&why));
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create output folder", out.display()))?;
    let name = e
        .model
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let title = format!(
        "{name}{kind}: {:.2}% on {} MNIST test images",
        100.0 * report.accuracy(),
        report.images
    );
    viz::confusion_matrix(&report.confusion, &title, &out.join("confusion.png"))?;
    let tiles: Vec<viz::Tile> = report
        .mistakes
        .iter()
        .take(100)
        .map(|&(i, t, p)| viz::Tile {
            pixels: test.image(i),
            caption: format!("#{i}: {t}→{p}"),
            highlight: true,
        })
        .collect();
    let mistakes_title = format!(
        "{} misclassified (first {}), true→predicted",
        report.mistakes.len(),
        tiles.len()
    );
    viz::digit_grid(&tiles, 10, &mistakes_title, &out.join("mistakes.png"))?;
    if json {
        let per_class: Vec<_> =
            (0..10).map(|c| json!({"digit": c, "precision": report.precision(c), "recall": report.recall(c)})).collect();
        let doc = json!({
            "model": e.model, "sha256": e.sha256, "images": report.images, "correct": report.correct,
            "accuracy": report.accuracy(), "per_class": per_class, "confusion": report.confusion,
            "mistakes": report.mistakes, "seconds": seconds,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("{title} ({} wrong), {seconds:.2}s", report.mistakes.len());
        print!("{}", report.table());
        println!(
            "wrote {} and {}",
            out.join("confusion.png").display(),
            out.join("mistakes.png").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `bench` of a model file: the host's int8 latency on the firmware's kernels (no tract).
fn bench_file(
    file: &answers::Int8File,
    runs: usize,
    data: &Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let test = mnist::load(data, Split::Test)?;
    let runs = runs.max(1000);
    let (p50, p99) = file.with_model(|m| {
        runtime::bench::int8_latency(m, test.pixels(), runs)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.path.display()))
    })??;
    if json {
        println!("{}", serde_json::to_string_pretty(&(p50, p99))?);
    } else {
        println!(
            "{}: host int8 (firmware kernels), single image, {runs} runs: p50 {p50:.1} µs, p99 {p99:.1} µs",
            file.path.display(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn bench(
    classifier: &Classifier,
    batches: &[usize],
    runs: usize,
    data: &Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let test = mnist::load(data, Split::Test)?;
    let inputs = classifier.scale_pixels(test.pixels());
    let mut report = runtime::bench::run(classifier, &inputs, batches, runs.max(1000))?;
    // tract runs models the int8 compiler refuses: those still get tract's figures.
    match answers::Int8::for_model(classifier, Some(data)) {
        Ok(int8) => {
            report.int8 = Some(int8.with_model(|model| {
                runtime::bench::int8(model, test.pixels(), runs.max(1000), report.p50_us)
                    .map_err(|e| anyhow::anyhow!("int8 model: {e:?}"))
            })??)
        }
        Err(why) => eprintln!("host int8 not measured: {why:#}"),
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(ExitCode::SUCCESS)
}

fn quantize_command(
    classifier: &Classifier,
    calib: &Path,
    (count, seed): (usize, u64),
    output: Option<&Path>,
    target: Option<Board>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let embedded = embedded::is_embedded(classifier);
    // The embedded model has no folder of its own: its int8 model goes to the working folder.
    let model = match embedded {
        true => Path::new("mnist_cnn.onnx"),
        false => classifier.path(),
    };
    let beside_model = model.with_extension("int8");
    let output = output.unwrap_or(&beside_model);
    let q = quantize::quantize_mnist(classifier, calib, count, seed)?;
    let view = q.view();
    let fw = view.model();
    if output.extension().is_some_and(|e| e == "rs") {
        anyhow::bail!(
            "{}: the model is written as a model file now (X.int8), which the firmware reads from flash; `EMBER_MODEL=X.int8 cargo build -p ember-firmware` builds one into the image",
            output.display()
        );
    }
    let from = compiler::Provenance::from_hex(&classifier.sha256)
        .context("the model's SHA-256 is not 64 hex digits")?;
    let bytes = compiler::write(&q, &from);
    let layers = fw.layers.len().max(fw.tensors.len());
    let fits: Vec<Fit> = Board::CORES
        .iter()
        .map(|b| b.fit(bytes.len(), fw.arena_bytes, layers))
        .collect();
    if let Some(board) = target {
        let fit = board.fit(bytes.len(), fw.arena_bytes, layers);
        if !fit.fits() {
            anyhow::bail!(
                "{}: does not fit {} ({}): {}",
                classifier.path().display(),
                board.name,
                board.target,
                fit.describe()
            );
        }
    }
    runtime::write::whole(output, &bytes)
        .with_context(|| format!("{}: cannot write", output.display()))?;
    let test = mnist::load(calib, Split::Test)?;
    let cost = quantize::cost(classifier, &q, &test)?;
    let rows: Vec<serde_json::Value> = fw
        .layers
        .iter()
        .zip(fw.edges)
        .zip(q.names())
        .map(|((l, edge), name)| {
            let s = l.output_shape();
            let (shape, params) = match l {
                firmware::Layer::Conv(c) => (vec![s.h, s.w, s.c], c.output.c as usize * c.taps() + c.bias.len()),
                firmware::Layer::FullyConnected(f) => {
                    (vec![s.c], f.weights.len() + f.bias.len())
                }
                _ => (vec![s.h, s.w, s.c], 0),
            };
            let tensor = fw.tensors[edge.output as usize];
            json!({"layer": name, "output": shape, "inputs": edge.inputs, "params": params, "macs": l.macs(),
                   "weight_bytes": l.weight_bytes(), "activation_bytes": l.output_len(),
                   "fused": edge.fused,
                   // A convolution whose max pool runs inside it never stores its output.
                   "arena_offset": fw.lifetime(edge.output as usize).map(|_| tensor.offset)})
        })
        .collect();
    let total = |k: &str| rows.iter().map(|r| r[k].as_u64().unwrap_or(0)).sum::<u64>();
    let summary = json!({
        "model": classifier.path(), "onnx_sha256": classifier.sha256, "output": output, "calibration_images": count, "seed": seed,
        "layers": rows, "params": total("params"), "macs": total("macs"), "weight_bytes": total("weight_bytes"),
        "arena_bytes": fw.arena_bytes, "activation_bytes": q.activation_bytes(), "float_accuracy": cost.float_accuracy, "int8_accuracy": cost.int8_accuracy,
        "agreement": cost.agreement, "test_images": cost.images, "fits": fits,
    });
    if output == beside_model && !embedded {
        update_card(model, &summary)?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<22} {:>12} {:>8} {:>9} {:>12} {:>12}",
        "layer", "output", "params", "MACs", "weight bytes", "activations"
    );
    for r in &rows {
        let shape: Vec<String> = r["output"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v.to_string())
            .collect();
        println!(
            "{:<22} {:>12} {:>8} {:>9} {:>12} {:>12}",
            r["layer"].as_str().unwrap_or(""),
            shape.join("×"),
            num(&r["params"]),
            num(&r["macs"]),
            num(&r["weight_bytes"]),
            num(&r["activation_bytes"])
        );
    }
    println!(
        "{:<22} {:>12} {:>8} {:>9} {:>12} {:>12}",
        "total",
        "",
        total("params"),
        total("macs"),
        total("weight_bytes"),
        q.activation_bytes()
    );
    println!(
        "memory plan: one arena of {} bytes for {} bytes of activations (each layer's output at the offset `quantize --json` gives)",
        thousands(fw.arena_bytes as u64),
        thousands(q.activation_bytes() as u64)
    );
    println!(
        "calibrated on {count} training images (seed {seed}); on {} test images: float {:.2}%, int8 {:.2}%, agreement {:.2}%",
        cost.images,
        100.0 * cost.float_accuracy,
        100.0 * cost.int8_accuracy,
        100.0 * cost.agreement
    );
    let fits: Vec<String> = fits
        .iter()
        .map(|f| {
            let verdict = if f.fits() { "fits" } else { "does NOT fit" };
            format!("{} {verdict}: {}", f.board, f.describe())
        })
        .collect();
    println!("{}", fits.join("; "));
    println!("wrote {}", output.display());
    Ok(ExitCode::SUCCESS)
}

fn num(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Records the int8 figures in the model card beside the ONNX file, if there is one for it.
fn update_card(model: &Path, summary: &serde_json::Value) -> anyhow::Result<()> {
    let path = model.with_extension("json");
    let sha = summary["onnx_sha256"].as_str().unwrap_or_default();
    let Some(mut card) = card::ModelCard::read_for(&path, sha)? else {
        return Ok(());
    };
    card.int8 = Some(serde_json::from_value(summary.clone())?);
    card.write(&path)?;
    Ok(())
}

/// Digits `inspect --probe-input` runs under each convention.
const PROBE_DIGITS: usize = 1000;

fn inspect_command(
    model: &ModelArgs,
    probe: bool,
    data: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut classifier = model.load()?;
    let report = inspect::inspect(&classifier);
    let probed = match probe {
        true => {
            let test = mnist::load(&mnist::data_dir(data)?, Split::Test)?.take(PROBE_DIGITS);
            Some(eval::probe_conventions(&mut classifier, &test)?)
        }
        false => None,
    };
    if json {
        let mut doc = serde_json::to_value(&report)?;
        if let Some(probed) = &probed {
            doc["probe_input"] = json!(probed
                .iter()
                .map(|(name, accuracy)| json!({"input": name, "accuracy": accuracy}))
                .collect::<Vec<_>>());
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", report.text());
    if let Some(probed) = probed {
        println!("probe       float accuracy on the first {PROBE_DIGITS} MNIST test digits, per --input:");
        for (name, accuracy) in &probed {
            let what = convention::PRESETS
                .iter()
                .find(|p| p.0 == name)
                .map_or("the model's metadata", |p| p.3);
            println!("            {name:<11} {:>6.2}%   {what}", 100.0 * accuracy);
        }
        let best = &probed[0].0;
        let path = classifier.path().display();
        println!(
            "best        --input {best}; to record it in the model: runtime annotate --model {path} --input {best} -o ANNOTATED.onnx"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn annotate_command(model: &ModelArgs, output: &Path) -> anyhow::Result<ExitCode> {
    let Some(path) = model.model.as_deref() else {
        anyhow::bail!("annotate: give the model to annotate with --model");
    };
    let Some(convention) = model.convention()? else {
        anyhow::bail!("annotate: give the convention with --input PRESET or --input-scale S");
    };
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let before = Classifier::from_bytes(path, &bytes)?;
    let annotated = convention::annotate(&bytes, &convention)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let after = Classifier::from_bytes(output, &annotated)?;
    let stated = Convention {
        source: convention::Source::Metadata,
        ..convention
    };
    if after.proto.graph != before.proto.graph || after.input != stated {
        anyhow::bail!(
            "{}: the annotated copy does not read back as written",
            path.display()
        );
    }
    std::fs::write(output, &annotated)
        .with_context(|| format!("{}: cannot write", output.display()))?;
    println!(
        "wrote {}: {}; graph and weights unchanged; sha256 {}",
        output.display(),
        after.input.describe(),
        after.sha256
    );
    Ok(ExitCode::SUCCESS)
}

/// Pictures a soak cycles through (their host logits are computed once).
const SOAK_PICTURES: usize = 200;

fn soak(
    file: &answers::Int8File,
    device: &mut Device,
    test: &mnist::Dataset,
    requests: usize,
    every: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let test = test.take(SOAK_PICTURES);
    let images: Vec<&[u8; PIXELS]> = (0..test.len())
        .filter_map(|i| test.image(i).try_into().ok())
        .collect();
    let host = file.answers(&images)?;
    let expected: std::collections::HashMap<&[u8], [i8; 10]> = images
        .iter()
        .zip(&host)
        .filter_map(|(img, a)| Some((&img[..], a.logits?)))
        .collect();
    let want = |img: &[u8]| expected.get(img).copied().unwrap_or_default();
    let report = runtime::soak::run(device, test.pixels(), requests, every, &want);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(if report.lost + report.wrong == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `inspect` of a model file: its header, its layers, its sizes, and whether it fits each
/// board (the file in flash beside the service's code, the arena beside its stack).
fn inspect_file(file: &answers::Int8File, json: bool) -> anyhow::Result<ExitCode> {
    let doc = inspect::file(file)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    let shape = |v: &serde_json::Value| {
        let d: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| x.to_string())
            .collect();
        d.join("×")
    };
    println!(
        "{}: Ember model file v{}, {} bytes, from ONNX sha256 {}…",
        file.path.display(),
        doc["format_version"],
        thousands(num(&doc["file_bytes"])),
        &file.sha256[..16]
    );
    println!(
        "input {} (pixel × {} + {}), output {}; {} MACs, arena {} bytes",
        shape(&doc["input"]),
        doc["input_convention"]["scale"],
        doc["input_convention"]["offset"],
        shape(&doc["output"]),
        thousands(num(&doc["macs"])),
        thousands(num(&doc["arena_bytes"]))
    );
    println!(
        "{:<28} {:>10} {:>10} {:>12}",
        "layer", "output", "MACs", "weight bytes"
    );
    for l in doc["layers"].as_array().into_iter().flatten() {
        let name = l["layer"].as_str().unwrap_or("");
        let note = if l["fused"] == true {
            "  (fused into the layer before)"
        } else {
            ""
        };
        println!(
            "{name:<28} {:>10} {:>10} {:>12}{note}",
            shape(&l["output"]),
            num(&l["macs"]),
            num(&l["weight_bytes"])
        );
    }
    let fits: Vec<String> = doc["fits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let verdict = if num(&f["file_bytes"]) <= num(&f["model_room"])
                && num(&f["arena_needed"]) <= num(&f["arena"])
                && num(&f["layers"]) <= num(&f["max_layers"])
            {
                "fits"
            } else {
                "does not fit"
            };
            format!("{} {verdict}", f["board"].as_str().unwrap_or(""))
        })
        .collect();
    println!(
        "boards (file in flash beside the service, arena beside its stack): {}",
        fits.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
