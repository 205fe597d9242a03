//! Load on `runtime serve`'s `POST /api/classify`: clients posting photos of MNIST test digits
//! at once (every kind of trouble: grain, lighting, tint, JPEG, small, rotated, pens, specks),
//! each answer checked against the digit the same code gives without HTTP. Prints requests/s,
//! p50 and p99 latency, errors, wrong and lost answers, and the same work done directly on as
//! many threads (no HTTP, no JSON) as the peer, with the ratio.
//!
//! `cargo run --release -p ember-tests --bin serve-load -- [--clients 16] [--requests 2000] [--device qemu[:m3]]`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use ember_tests::photos::{self, Trouble};
use ember_tests::root;
use runtime::serve::{self, App, DeviceQueue, Models};

/// Different photos the clients cycle through.
const PHOTOS: usize = 200;

struct Options {
    clients: usize,
    requests: usize,
    device: Option<String>,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        clients: 16,
        requests: 2000,
        device: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next().with_context(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--clients" => o.clients = value.parse().context("--clients takes a number")?,
            "--requests" => o.requests = value.parse().context("--requests takes a number")?,
            "--device" => o.device = Some(value),
            _ => anyhow::bail!("unknown argument {a} (--clients N, --requests N, --device SPEC)"),
        }
    }
    Ok(o)
}

/// Photos of the first test digits, every kind of trouble in turn.
fn photos() -> anyhow::Result<Vec<Vec<u8>>> {
    let test = mnist::load(&root().join("data/mnist"), mnist::Split::Test)?;
    Ok((0..PHOTOS)
        .map(|i| {
            let trouble = Trouble::ALL[i % Trouble::ALL.len()];
            photos::photo(test.image(i), trouble, photos::photo_seed(trouble, i, 2026))
        })
        .collect())
}

/// The serving work without the server: decode, frame, float and host int8, on `threads`
/// threads for `requests` photos (large pictures decode one at a time, so fewer threads than
/// requests in flight would leave cores idle). Returns each photo's float digit and the rate.
fn direct(
    models: &Models,
    photos: &[Vec<u8>],
    threads: usize,
    requests: usize,
) -> (Vec<Option<usize>>, f64) {
    let one = |bytes: &[u8]| -> Option<usize> {
        let framed = runtime::preprocess::frame(&runtime::preprocess::decode(bytes).ok()?).ok()?;
        let _ = models.int8(&framed);
        Some(models.float(&framed)?.ok()?.digit)
    };
    let digits: Vec<Option<usize>> = photos.iter().map(|p| one(p)).collect();
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let _ = one(&photos[i % photos.len()]);
            });
        }
    });
    (digits, requests as f64 / started.elapsed().as_secs_f64())
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: Vec<String>,
    wrong: usize,
    device_errors: usize,
}

fn main() -> anyhow::Result<()> {
    let o = options()?;
    let photos = photos()?;
    let classifier = runtime::embedded::classifier(None)?;
    let peer_models = Models::new(runtime::embedded::classifier(None)?, None)?;
    // As many threads as clients: the server also works on that many requests at once.
    let threads = o.clients;
    let (expected, direct_rate) = direct(&peer_models, &photos, threads, o.requests.min(1000));

    let device = match &o.device {
        Some(spec) => {
            let device = runtime::device::open(spec, 115_200, None, None, Duration::from_secs(5))?;
            Some(DeviceQueue::start(
                device,
                serve::DEVICE_QUEUE,
                Duration::from_secs(30),
            ))
        }
        None => None,
    };
    let app = App::new(Models::new(classifier, None)?, device)?;
    let (bound, ready) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        serve::run(
            app,
            "127.0.0.1:0".parse().expect("an address"),
            |addr| {
                let _ = bound.send(addr);
            },
            async {
                let _ = stopped.await;
            },
        )
    });
    let addr = ready.recv_timeout(Duration::from_secs(30))?;
    let url = format!("http://{addr}/api/classify");

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let (next, tally) = (AtomicUsize::new(0), Mutex::new(Tally::default()));
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..o.clients {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= o.requests {
                    break;
                }
                let photo = i % photos.len();
                let sent = Instant::now();
                let answer = agent.post(&url).send(&photos[photo][..]);
                let took = sent.elapsed();
                let mut t = tally.lock().expect("tally");
                match answer {
                    Ok(mut r) if r.status() == 200 => {
                        let body: serde_json::Value = r.body_mut().read_json().unwrap_or_default();
                        t.latencies.push(took);
                        if body["float"]["digit"].as_u64().map(|d| d as usize) != expected[photo] {
                            t.wrong += 1;
                        }
                        if body["device"]["error"].is_string() {
                            t.device_errors += 1;
                        }
                    }
                    Ok(mut r) if expected[photo].is_none() && r.status() == 422 => {
                        let _ = r.body_mut().read_to_string();
                        t.latencies.push(took);
                    }
                    Ok(r) => t.errors.push(format!("HTTP {}", r.status())),
                    Err(e) => t.errors.push(e.to_string()),
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    server
        .join()
        .map_err(|_| anyhow::anyhow!("the server panicked"))??;

    let mut t = tally.into_inner().expect("tally");
    t.latencies.sort();
    let pct = |p: f64| {
        t.latencies
            .get(((t.latencies.len() as f64 * p) as usize).min(t.latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let answered = t.latencies.len();
    let lost = o.requests - answered - t.errors.len();
    let rate = answered as f64 / seconds;
    println!(
        "serve: {} clients, {} requests of {} photos{}",
        o.clients,
        o.requests,
        photos.len(),
        o.device
            .as_deref()
            .map(|d| format!(", device {d}"))
            .unwrap_or_default()
    );
    println!(
        "answered {answered} in {seconds:.2} s: {rate:.0} requests/s, p50 {:.1} ms, p99 {:.1} ms",
        pct(0.50),
        pct(0.99)
    );
    println!(
        "errors {}, wrong {}, lost {lost}, device errors {}",
        t.errors.len(),
        t.wrong,
        t.device_errors
    );
    println!(
        "peer: the same work without HTTP on {threads} threads: {direct_rate:.0} photos/s; served/direct {:.2}",
        rate / direct_rate
    );
    if let Some(e) = t.errors.first() {
        println!("first error: {e}");
    }
    if !t.errors.is_empty() || t.wrong > 0 || lost > 0 || t.device_errors > 0 {
        anyhow::bail!("not every request was answered right");
    }
    Ok(())
}
