//! The handlers: the page, `POST /api/classify`, `GET /api/model`, `GET /healthz`, and a JSON
//! 404 for everything else. Errors are one line of JSON, `{"error": "..."}`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::BodyExt;
use mnist::PIXELS;
use serde_json::{json, Value};

use super::{App, Models, BODY_LIMIT, DRAIN_LIMIT, PAGE};
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
pub async fn classify(State(app): Shared, headers: HeaderMap, body: Body) -> Response {
    let body = match read_capped(&headers, body).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let shared = Arc::clone(&app);
    let host = tokio::task::spawn_blocking(move || host_answers(&shared.models, &body)).await;
    let (framed, float, int8) = match host {
        Ok(Ok(host)) => host,
        Ok(Err(e)) => return error(StatusCode::UNPROCESSABLE_ENTITY, format!("upload: {e}")),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("upload: {e}")),
    };
    let float = match float {
        Some(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        Some(Ok(answer)) => Some(answer),
        None => None,
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
    if let Some(float) = &float {
        ways.push(("float", float));
    }
    if ways.is_empty() {
        let why = failed
            .iter()
            .map(|(n, e)| format!("{n}: {e}"))
            .collect::<Vec<_>>();
        return error(StatusCode::INTERNAL_SERVER_ERROR, why.join("; "));
    }
    Json(answers::to_json(&framed, &ways, &failed)).into_response()
}

/// The body, when it is at most [`BODY_LIMIT`] bytes. A larger one is refused with 413, but
/// read (and dropped) up to [`DRAIN_LIMIT`] first: a client that sends its whole body before it
/// reads, as most do, would otherwise find the connection closed under it (a broken pipe, not
/// the 413).
async fn read_capped(headers: &HeaderMap, mut body: Body) -> Result<Bytes, Response> {
    let too_big = |bytes: String| {
        let limit = BODY_LIMIT >> 20;
        let message = format!("upload: the picture is {bytes} bytes; the limit is {limit} MiB");
        error(StatusCode::PAYLOAD_TOO_LARGE, message)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > DRAIN_LIMIT as u64) {
        return Err(too_big(n.to_string()));
    }
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| error(StatusCode::BAD_REQUEST, format!("upload: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len();
        if seen <= BODY_LIMIT {
            kept.extend_from_slice(&data);
        } else if seen > DRAIN_LIMIT {
            return Err(too_big(format!("more than {seen}")));
        } else {
            kept = Vec::new();
        }
    }
    match seen > BODY_LIMIT {
        true => Err(too_big(seen.to_string())),
        false => Ok(Bytes::from(kept)),
    }
}

type HostAnswers = (
    [u8; PIXELS],
    Option<anyhow::Result<Answer>>,
    Result<Answer, String>,
);

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
