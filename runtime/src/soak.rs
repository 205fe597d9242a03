//! The device link under load and faults: thousands of requests, with QEMU killed in the
//! middle of a request and requests sent while the device is still answering, counting what
//! was answered, lost or wrong. An answer is wrong when its logits differ from the host
//! simulation's for its own picture, which also catches a reply to another request.

use std::collections::BTreeMap;
use std::time::Instant;

use mnist::PIXELS;
use serde::Serialize;

use crate::device::{fault_kind, Device};

/// What a soak saw.
#[derive(Debug, Default, Serialize)]
pub struct SoakReport {
    /// How the device was reached.
    pub device: String,
    /// Requests sent (each pipelined pair counts two).
    pub requests: usize,
    /// Answered with the right logits.
    pub answered: usize,
    /// Never answered, even after the retries.
    pub lost: usize,
    /// Answered with logits that are not the host's for that picture.
    pub wrong: usize,
    /// Errors the client reported and did not recover from, by kind.
    pub errors: BTreeMap<String, usize>,
    /// Faults recovered from by reconnecting, by kind.
    pub recovered: BTreeMap<String, usize>,
    /// Times QEMU was killed in the middle of a request.
    pub kills: usize,
    /// Pairs of requests sent back to back, the second while the device computed the first.
    pub pipelined: usize,
    /// Round-trip latency percentiles of the plain requests, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Sends `requests` requests cycling through `images`; every `fault_every` requests (0: never)
/// injects a fault, alternately a kill of QEMU mid-request and a pipelined pair. `expected`
/// gives the host's logits for a picture.
pub fn run(
    device: &mut Device,
    images: &[u8],
    requests: usize,
    fault_every: usize,
    expected: &dyn Fn(&[u8]) -> [i8; 10],
) -> SoakReport {
    let count = (images.len() / PIXELS).max(1);
    let image = |i: usize| &images[(i % count) * PIXELS..(i % count + 1) * PIXELS];
    let mut r = SoakReport {
        device: device.name().to_string(),
        ..Default::default()
    };
    let mut latencies = Vec::new();
    let started = Instant::now();
    let mut i = 0;
    while i < requests {
        let fault = fault_every > 0 && i % fault_every == fault_every - 1;
        if fault && (i / fault_every).is_multiple_of(2) {
            // The request goes out, then QEMU dies before it answers.
            r.kills += 1;
            if device.send_classify(image(i)).is_ok() {
                device.kill();
            }
            // Seq 0 is never a request's: this waits for the death to show, as a client would.
            tally(&mut r, device.answer_to(0).map(|_| ()));
            r.requests += 1;
            let answer = device.classify(image(i));
            count_answer(&mut r, answer, expected(image(i)));
            i += 1;
            continue;
        }
        if fault {
            // Two requests back to back: the second arrives while the first is computed.
            r.pipelined += 1;
            let (a, b) = (image(i), image(i + 1));
            let sent = [device.send_classify(a), device.send_classify(b)];
            for (seq, img) in sent.into_iter().zip([a, b]) {
                r.requests += 1;
                let answer = match seq {
                    Ok(seq) => device.answer_to(seq).or_else(|_| device.classify(img)),
                    Err(_) => device.classify(img),
                };
                count_answer(&mut r, answer, expected(img));
            }
            i += 2;
            continue;
        }
        r.requests += 1;
        let t = Instant::now();
        let answer = device.classify(image(i));
        if answer.is_ok() {
            latencies.push(t.elapsed().as_secs_f64() * 1e3);
        }
        count_answer(&mut r, answer, expected(image(i)));
        i += 1;
    }
    r.seconds = started.elapsed().as_secs_f64();
    r.recovered = device.recovered.clone();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    (r.p50_ms, r.p90_ms, r.p99_ms) = (pct(0.5), pct(0.9), pct(0.99));
    r
}

fn count_answer(
    r: &mut SoakReport,
    answer: anyhow::Result<firmware::protocol::Classification>,
    want: [i8; 10],
) {
    match answer {
        Ok(c) if c.logits == want => r.answered += 1,
        Ok(_) => r.wrong += 1,
        Err(e) => {
            r.lost += 1;
            tally(r, Err(e));
        }
    }
}

/// Counts an error by its kind.
fn tally(r: &mut SoakReport, result: anyhow::Result<()>) {
    if let Err(e) = result {
        *r.errors.entry(fault_kind(&e).to_string()).or_insert(0) += 1;
    }
}

impl SoakReport {
    /// Human-readable form.
    pub fn text(&self) -> String {
        let list = |m: &BTreeMap<String, usize>| {
            if m.is_empty() {
                return "none".to_string();
            }
            m.iter()
                .map(|(k, n)| format!("{k} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "soak {}: {} requests in {:.1} s: {} answered, {} lost, {} wrong\n\
             faults injected: {} QEMU kills mid-request, {} pipelined pairs\n\
             errors reported: {}\nrecovered by reconnecting: {}\n\
             plain round trips: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms\n",
            self.device,
            self.requests,
            self.seconds,
            self.answered,
            self.lost,
            self.wrong,
            self.kills,
            self.pipelined,
            list(&self.errors),
            list(&self.recovered),
            self.p50_ms,
            self.p90_ms,
            self.p99_ms
        )
    }
}
