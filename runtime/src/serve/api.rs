//! The handlers: the page, `POST /api/classify`, `GET /api/model`, `GET /healthz`, and a JSON
//! 404 for everything else. Errors are one line of JSON, `{"error": "..."}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mnist::PIXELS;
use serde_json::{json, Value};

use super::{App, Models, PAGE};
use crate::answers::{self, Answer};
use crate::preprocess;

type Shared = State<Arc<App>>;

/// `GET /`: the page.
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /api/model`: what `inspect --json` reports, the model card, the int8 model and the
/// device.
pub async fn model(State(app): Shared) -> Json<Value> {
    Json(app.about.clone())
}

/// Anything else: 404 with the endpoints there are.
pub async fn not_found(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "{method} {}: no such endpoint (GET /, POST /api/classify, GET /api/model, GET /healthz)",
            uri.path()
        ),
    )
}

/// `POST /api/classify`: the picture's bytes as the body; the answers as `classify --json`
/// gives them.
pub async fn classify(State(app): Shared, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) => return error(e.status(), format!("upload: {}", e.body_text())),
    };
    let shared = Arc::clone(&app);
    let host = tokio::task::spawn_blocking(move || host_answers(&shared.models, &body)).await;
    let (framed, float, int8) = match host {
        Ok(Ok(host)) => host,
        Ok(Err(e)) => return error(StatusCode::UNPROCESSABLE_ENTITY, format!("upload: {e}")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("upload: {e}")),
    };
    let float = match float {
        Ok(answer) => answer,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    };
    let device = match &app.device {
        Some(device) => Some(device.classify(framed).await),
        None => None,
    };
    let mut ways: Vec<(&str, &Answer)> = Vec::new();
    let mut failed: Vec<(&str, String)> = Vec::new();
    for (name, answer) in [("device", device.as_ref()), ("host-int8", Some(&int8))] {
        match answer {
            Some(Ok(answer)) => ways.push((name, answer)),
            Some(Err(why)) => failed.push((name, why.clone())),
            None => {}
        }
    }
    ways.push(("float", &float));
    Json(answers::to_json(&framed, &ways, &failed)).into_response()
}

type HostAnswers = ([u8; PIXELS], anyhow::Result<Answer>, Result<Answer, String>);

/// Frames the picture, then the float and host int8 answers (on the blocking pool).
fn host_answers(models: &Models, body: &[u8]) -> Result<HostAnswers, preprocess::PreprocessError> {
    let framed = preprocess::frame(&preprocess::decode(body)?)?;
    let float = models.float(&framed);
    let int8 = models.int8(&framed).map_err(|e| format!("{e:#}"));
    Ok((framed, float, int8))
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}
