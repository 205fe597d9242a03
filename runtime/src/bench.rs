//! Latency and throughput of a classifier in tract, measured on real inputs.

use std::time::Instant;

use mnist::PIXELS;
use serde::Serialize;
use tract_onnx::prelude::*;

use crate::classifier::{one_line, Classifier, ModelError};

/// Latency percentiles and throughput figures.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Timed single-image runs.
    pub runs: usize,
    /// Single-image latency percentiles, microseconds.
    pub p50_us: f64,
    /// 90th percentile, microseconds.
    pub p90_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// Throughput per batch size.
    pub throughput: Vec<Throughput>,
    /// The host int8 simulation (the firmware's kernels), one image at a time.
    pub int8: Option<Int8Latency>,
}

/// Single-image latency of the host int8 simulation, in the same run as tract's.
#[derive(Debug, Serialize)]
pub struct Int8Latency {
    /// Median, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// Host int8 p50 over tract's float p50.
    pub vs_tract: f64,
}

/// Throughput at one batch size.
#[derive(Debug, Serialize)]
pub struct Throughput {
    /// Images per call.
    pub batch: usize,
    /// Images per second.
    pub images_per_sec: f64,
    /// Mean time per call, microseconds.
    pub us_per_batch: f64,
}

const WARMUP: usize = 200;
/// Each batch size is timed for at least this long.
const MIN_SECONDS: f64 = 1.0;

/// The error of a tract call on `c`'s plan, in one line.
fn tract_failed(c: &Classifier) -> impl Fn(TractError) -> ModelError + Copy + '_ {
    |e| ModelError {
        path: c.path().display().to_string(),
        reason: one_line(&e),
    }
}

/// Benchmarks `c` on `inputs` (scaled pixels of many images, cycled).
pub fn run(
    c: &Classifier,
    inputs: &[f32],
    batches: &[usize],
    runs: usize,
) -> Result<BenchReport, ModelError> {
    let fail = tract_failed(c);
    let images = inputs.len() / PIXELS;
    let plan = c.plan(1)?;
    let mut state = plan.state().map_err(fail)?;
    let tensors: Vec<TValue> = (0..images.min(1000))
        .map(|i| plan.tensor(&inputs[i * PIXELS..(i + 1) * PIXELS]))
        .collect::<TractResult<_>>()
        .map_err(fail)?;
    let mut latencies = Vec::with_capacity(runs);
    for i in 0..WARMUP + runs {
        let input = tensors[i % tensors.len()].clone();
        let started = Instant::now();
        state.run(tvec!(input)).map_err(fail)?;
        if i >= WARMUP {
            latencies.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    let pct = percentiles(latencies);
    let mut throughput = Vec::new();
    for &batch in batches.iter().filter(|&&b| b > 0 && b <= images) {
        let plan = c.plan(batch)?;
        let mut state = plan.state().map_err(fail)?;
        let input = plan.tensor(&inputs[..batch * PIXELS]).map_err(fail)?;
        for _ in 0..5 {
            state.run(tvec!(input.clone())).map_err(fail)?;
        }
        let (started, mut calls) = (Instant::now(), 0usize);
        while calls < 20 || started.elapsed().as_secs_f64() < MIN_SECONDS {
            state.run(tvec!(input.clone())).map_err(fail)?;
            calls += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        throughput.push(Throughput {
            batch,
            images_per_sec: (calls * batch) as f64 / secs,
            us_per_batch: secs * 1e6 / calls as f64,
        });
    }
    Ok(BenchReport {
        runs,
        p50_us: pct(0.5),
        p90_us: pct(0.9),
        p99_us: pct(0.99),
        throughput,
        int8: None,
    })
}

/// The `p` quantile of `samples`, for any `p` in 0..=1.
fn percentiles(mut samples: Vec<f64>) -> impl Fn(f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    move |p| samples[((samples.len() - 1) as f64 * p).round() as usize]
}

/// Times `model` through the firmware's kernels on `images` (cycled), one image per call, as
/// `runtime eval --int8` runs them; `tract_p50_us` gives the ratio.
pub fn int8(
    model: &firmware::Model,
    images: &[u8],
    runs: usize,
    tract_p50_us: f64,
) -> Result<Int8Latency, firmware::Error> {
    let (p50_us, p99_us) = int8_latency(model, images, runs)?;
    Ok(Int8Latency {
        p50_us,
        p99_us,
        vs_tract: p50_us / tract_p50_us,
    })
}

/// The p50 and p99 latency, µs, of `model` on the firmware's kernels, one image a run, over
/// `runs` runs after a warm-up.
pub fn int8_latency(
    model: &firmware::Model,
    images: &[u8],
    runs: usize,
) -> Result<(f64, f64), firmware::Error> {
    let checked = model.check::<firmware::kernels::All>()?;
    let mut arena = vec![0i8; model.arena_bytes];
    let count = images.len() / PIXELS;
    let mut latencies = Vec::with_capacity(runs);
    for i in 0..WARMUP + runs {
        let image = &images[(i % count) * PIXELS..(i % count + 1) * PIXELS];
        let started = Instant::now();
        std::hint::black_box(checked.run(image, &mut arena, |_, _| {})?);
        if i >= WARMUP {
            latencies.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    let pct = percentiles(latencies);
    Ok((pct(0.5), pct(0.99)))
}

impl BenchReport {
    /// Human-readable form.
    pub fn text(&self) -> String {
        let mut out = format!(
            "single image, {} runs: p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs\n",
            self.runs, self.p50_us, self.p90_us, self.p99_us
        );
        for t in &self.throughput {
            out += &format!(
                "batch {:>4}: {:>9.0} images/s ({:.1} µs per batch)\n",
                t.batch, t.images_per_sec, t.us_per_batch
            );
        }
        if let Some(q) = &self.int8 {
            out += &format!(
                "host int8 (firmware kernels), single image: p50 {:.1} µs, p99 {:.1} µs; {:.2}× tract's p50\n",
                q.p50_us, q.p99_us, q.vs_tract
            );
        }
        out
    }
}

/// Round trips to a device: one Classify request per image, answered before the next is sent.
#[derive(Debug, Serialize)]
pub struct DeviceReport {
    /// How the device was reached.
    pub device: String,
    /// Requests timed.
    pub requests: usize,
    /// Round-trip latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile, milliseconds.
    pub p90_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Requests answered per second, one at a time.
    pub requests_per_sec: f64,
    /// Instructions per inference the device reported (median).
    pub instructions: u32,
}

/// Times `requests` round trips on `images` (28×28 bytes each, cycled) after 10 warm-up ones.
pub fn device(
    device: &mut crate::device::Device,
    images: &[u8],
    requests: usize,
) -> anyhow::Result<DeviceReport> {
    let count = (images.len() / PIXELS).max(1);
    let image = |i: usize| &images[(i % count) * PIXELS..(i % count + 1) * PIXELS];
    for i in 0..10 {
        device.classify(image(i))?;
    }
    let (mut latencies, mut instructions) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for i in 0..requests.max(1) {
        let t = Instant::now();
        instructions.push(device.classify(image(i))?.instructions);
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    instructions.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    Ok(DeviceReport {
        device: device.name().to_string(),
        requests: latencies.len(),
        p50_ms: pct(0.5),
        p90_ms: pct(0.9),
        p99_ms: pct(0.99),
        requests_per_sec: latencies.len() as f64 / secs,
        instructions: instructions[instructions.len() / 2],
    })
}

impl DeviceReport {
    /// Human-readable form.
    pub fn text(&self) -> String {
        format!(
            "device {}, {} round trips: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, {:.1} requests/s, \
             {} instructions per inference\n",
            self.device,
            self.requests,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.requests_per_sec,
            self.instructions
        )
    }
}

/// Time spent in one node of tract's optimized plan, per single-image run.
#[derive(Debug, Serialize)]
pub struct NodeTime {
    /// The node's name in the optimized plan.
    pub node: String,
    /// Its operator, as tract names it.
    pub op: String,
    /// Mean time per run, microseconds.
    pub us: f64,
}

/// Per-node profile of the batch-`batch` plan over `runs` runs (after the warm-up), through
/// tract's evaluation hook, with the run's own overhead (state set-up, outputs) as a last row.
pub fn profile(
    c: &Classifier,
    inputs: &[f32],
    batch: usize,
    runs: usize,
) -> Result<Vec<NodeTime>, ModelError> {
    let fail = tract_failed(c);
    let images = inputs.len() / PIXELS;
    if batch == 0 || batch > images {
        return Err(ModelError {
            path: c.path().display().to_string(),
            reason: format!("cannot profile a batch of {batch}: there are {images} images"),
        });
    }
    let plan = c.plan(batch)?;
    let mut state = plan.state().map_err(fail)?;
    let input = plan.tensor(&inputs[..batch * PIXELS]).map_err(fail)?;
    let model = state.model().clone();
    let mut nodes: Vec<f64> = vec![0.0; model.nodes().len()];
    let mut total = 0.0;
    for i in 0..WARMUP + runs {
        let measured = i >= WARMUP;
        let started = Instant::now();
        state
            .run_plan_with_eval(tvec!(input.clone()), |ctx, op_state, node, inputs| {
                let t = Instant::now();
                let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                if measured {
                    nodes[node.id] += t.elapsed().as_secs_f64();
                }
                out
            })
            .map_err(fail)?;
        if measured {
            total += started.elapsed().as_secs_f64();
        }
    }
    let per_run = |s: f64| s * 1e6 / runs as f64;
    let mut rows: Vec<NodeTime> = model
        .nodes()
        .iter()
        .filter(|n| nodes[n.id] > 0.0)
        .map(|n| NodeTime {
            node: n.name.clone(),
            op: n.op().name().to_string(),
            us: per_run(nodes[n.id]),
        })
        .collect();
    rows.push(NodeTime {
        node: "(outside the nodes)".into(),
        op: "state, inputs, outputs".into(),
        us: per_run(total - nodes.iter().sum::<f64>()),
    });
    Ok(rows)
}

/// The profile as a table, with each row's share of the total.
pub fn profile_text(rows: &[NodeTime]) -> String {
    let total: f64 = rows.iter().map(|r| r.us).sum();
    let mut out = format!("{:<44} {:<22} {:>9} {:>6}\n", "node", "op", "µs", "share");
    for r in rows {
        out += &format!(
            "{:<44} {:<22} {:>9.2} {:>5.1}%\n",
            r.node,
            r.op,
            r.us,
            100.0 * r.us / total
        );
    }
    out + &format!("{:<44} {:<22} {:>9.2}\n", "total", "", total)
}
