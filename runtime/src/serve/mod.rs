//! `runtime serve`: a page to draw a digit on (or drop a photo) that shows every stage at once
//! (the framed 28×28 input, the float answer, the host int8 answer and the device's, with its
//! instructions), and the JSON API behind it.
//!
//! Inference runs on tokio's blocking pool, so a slow request never stalls the server; the
//! device is one link, owned by one thread, which takes requests in order ([`device`]).

mod api;
mod device;
mod models;

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use crate::answers::Int8;

pub use device::DeviceQueue;
pub use models::Models;

/// The largest request body taken; a larger one is answered 413.
pub const BODY_LIMIT: usize = 10 * 1024 * 1024;
/// How much of a too-large body is read (and dropped) so that its sender gets the 413; past
/// this the connection is closed.
pub const DRAIN_LIMIT: usize = 8 * BODY_LIMIT;
/// Device requests that may wait in line; more are answered at once with a "busy" error.
pub const DEVICE_QUEUE: usize = 32;

/// The page: one HTML file with its CSS and script, embedded in the binary (no build step,
/// works offline).
pub static PAGE: &str = include_str!("page.html");

/// What `serve` answers with.
pub struct App {
    /// The model, its plans and its int8 twin.
    pub models: Models,
    /// The device, when one is attached.
    pub device: Option<DeviceQueue>,
    /// `GET /api/model`'s answer, made once.
    about: serde_json::Value,
}

impl App {
    /// Serves `models`, and `device` when one is attached.
    pub fn new(models: Models, device: Option<DeviceQueue>) -> anyhow::Result<Self> {
        let about = about(&models, device.as_ref())?;
        Ok(Self {
            models,
            device,
            about,
        })
    }
}

/// The model as `inspect --json` reports it, its card (when there is one), how the host's
/// int8 answer is made, and the device.
fn about(models: &Models, device: Option<&DeviceQueue>) -> anyhow::Result<serde_json::Value> {
    let (inspect, file, card) = match (&models.float, &models.int8) {
        (Some((classifier, _)), _) => {
            let card = match crate::embedded::is_embedded(classifier) {
                true => Some(serde_json::from_str(crate::embedded::CARD)?),
                false => card::ModelCard::read_for(
                    &classifier.path().with_extension("json"),
                    &classifier.sha256,
                )?,
            };
            (Some(crate::inspect::inspect(classifier)), None, card)
        }
        // A model file's card is the one beside it, written for its source ONNX.
        (None, Ok(int8)) => {
            let f = int8.file();
            let card = card::ModelCard::read_for(&f.path.with_extension("json"), &f.sha256)?;
            (None, Some(crate::inspect::file(f)?), card)
        }
        (None, Err(why)) => anyhow::bail!("{why}"),
    };
    let int8 = match &models.int8 {
        Ok(Int8::Committed(_)) => {
            json!({"source": "the committed model file, models/mnist_cnn.int8"})
        }
        Ok(Int8::Quantized(_)) => json!({"source": format!(
            "quantized at start-up ({} MNIST training images, seed {})",
            crate::quantize::DEFAULT_CALIB_COUNT,
            crate::quantize::DEFAULT_CALIB_SEED
        )}),
        Ok(Int8::Given(f)) => json!({"source": format!("the model file {}", f.path.display())}),
        Err(why) => json!({ "error": why }),
    };
    let device = device.map(|d| {
        let i = &d.info;
        json!({"name": d.name, "firmware": i.firmware_version, "target": i.target,
               "model_sha256": i.model_sha256, "arena_bytes": i.arena_bytes, "macs": i.macs})
    });
    Ok(json!({
        "inspect": inspect,
        "file": file,
        "float": models.float.is_some(),
        "card": card,
        "int8": int8,
        "device": device,
    }))
}

/// The routes: the page, `POST /api/classify`, `GET /api/model` and `GET /healthz`.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(api::page))
        .route("/healthz", get(api::healthz))
        .route("/api/model", get(api::model))
        .route("/api/classify", post(api::classify))
        .fallback(api::not_found)
        .with_state(std::sync::Arc::new(app))
}

/// Serves `app` on `addr` until `stop` completes (`runtime serve` passes [`interrupted`]); `ready` is
/// called with the bound address (the port is the system's choice when `addr`'s is 0).
pub fn run(
    app: App,
    addr: SocketAddr,
    ready: impl FnOnce(SocketAddr),
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("--addr {addr}: cannot listen: {e}"))?;
        ready(listener.local_addr()?);
        axum::serve(listener, router(app))
            .with_graceful_shutdown(stop)
            .await?;
        anyhow::Ok(())
    })?;
    // Blocking inference tasks still running end with the process.
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// Completes on Ctrl-C or, on Unix, SIGTERM (what `kill` and service managers send), so that
/// either way the server stops cleanly and a QEMU it started ends with it.
pub async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
