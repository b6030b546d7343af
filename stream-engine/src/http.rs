//! The HTTP front: one `POST /` endpoint for both services, dispatched on `X-Amz-Target`, plus
//! admin routes under `/_engine/` for the binary's fault injection.

use crate::State;
use crate::error::ApiError;
use crate::faults::{FaultKind, FaultRule, OutageMode};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

static REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// Accepts connections until `shutdown` flips to `true`.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                if state.faults.outage_mode() == Some(OutageMode::Refuse) {
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let mut conn_shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(state.clone(), req));
                    let conn = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stopped(&mut conn_shutdown) => {
                            conn.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                        }
                    }
                });
            }
            _ = stopped(&mut shutdown) => break,
        }
    }
}

/// Resolves once `rx` reads `true` (or its sender is gone).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;
type Resp = Response<Body>;

/// A response body fed by a channel: the event stream of a subscription. An `Err` aborts the
/// connection; the sender's drop ends the body.
struct ChannelBody(tokio::sync::mpsc::Receiver<crate::kinesis::subscription::Chunk>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(hyper::body::Frame::data)))
    }
}

fn full(body: Vec<u8>) -> Body {
    Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed()
}

fn with_request_id(mut resp: Resp) -> Resp {
    let id = REQUEST_ID.fetch_add(1, Ordering::Relaxed).to_string();
    if let Ok(v) = id.parse() {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

/// Starts the event stream of an accepted subscription.
fn subscription_response(
    state: &Arc<State>,
    sub: crate::kinesis::api::fanout::Subscription,
) -> Resp {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(crate::kinesis::subscription::run(state.clone(), sub, tx));
    let mut resp = Response::new(ChannelBody(rx).boxed());
    if let Ok(v) = "application/vnd.amazon.eventstream".parse() {
        resp.headers_mut().insert("content-type", v);
    }
    with_request_id(resp)
}

fn response(status: u16, content_type: &str, body: Vec<u8>) -> Resp {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    if let Ok(v) = content_type.parse() {
        headers.insert("content-type", v);
    }
    with_request_id(resp)
}

fn error_response(err: &ApiError, content_type: &str) -> Resp {
    let body = if content_type == crate::cbor::CONTENT_TYPE {
        crate::cbor::reply_to_cbor(&err.body()).unwrap_or_default()
    } else {
        err.body()
    };
    let mut resp = response(err.status, content_type, body);
    if let Ok(v) = err.code.parse() {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    resp
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Resp, std::io::Error> {
    if req.uri().path().starts_with("/_engine/") {
        return Ok(admin(&state, req).await);
    }
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let (service, operation) = target.split_once('.').unwrap_or(("", ""));
    let cbor = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(crate::cbor::is_cbor);
    let (service_name, content_type) = match service {
        crate::kinesis::api::TARGET_PREFIX if cbor => ("Kinesis", crate::cbor::CONTENT_TYPE),
        crate::kinesis::api::TARGET_PREFIX => ("Kinesis", "application/x-amz-json-1.1"),
        crate::dynamodb::api::TARGET_PREFIX => ("DynamoDB", "application/x-amz-json-1.0"),
        _ => ("", "application/x-amz-json-1.1"),
    };
    // An outage: hang until it ends, or drop the connection.
    while let Some(mode) = state.faults.outage_mode() {
        match mode {
            OutageMode::Hang => state.faults.wait_outage_over().await,
            OutageMode::Refuse => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "engine outage",
                ));
            }
        }
    }
    let body = match Limited::new(req.into_body(), state.config.max_request_bytes)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let err = ApiError {
                status: 413,
                code: "RequestEntityTooLargeException",
                message: format!("Request body rejected: {e}"),
                extra: None,
            };
            return Ok(error_response(&err, content_type));
        }
    };
    if service_name.is_empty() {
        let err = ApiError::new(
            "UnknownOperationException",
            format!("Unknown operation {target:?}"),
        );
        return Ok(error_response(&err, content_type));
    }
    let faults = state.faults.take_call(service_name, operation);
    if let Some(ms) = faults.latency_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut response_delay = None;
    match faults.error {
        Some(FaultKind::ResponseDelay { ms }) => response_delay = Some(Duration::from_millis(ms)),
        Some(kind) => {
            if let Some(err) = kind.to_error(operation) {
                return Ok(error_response(&err, content_type));
            }
        }
        None => {}
    }
    let body: Bytes = if content_type == crate::cbor::CONTENT_TYPE {
        match crate::cbor::request_to_json(&body) {
            Ok(json) => Bytes::from(json),
            Err(err) => return Ok(error_response(&err, content_type)),
        }
    } else {
        body
    };
    if service_name == "Kinesis" && operation == "SubscribeToShard" {
        return Ok(
            match crate::kinesis::api::fanout::subscribe(&state.kinesis, &state.faults, &body) {
                Ok(sub) => subscription_response(&state, sub),
                Err(err) => error_response(&err, content_type),
            },
        );
    }
    let result = match service_name {
        "Kinesis" => crate::kinesis::api::handle(&state.kinesis, &state.faults, operation, &body),
        _ => crate::dynamodb::api::handle(&state.dynamodb, &state.faults, operation, &body),
    };
    let result = match result {
        Ok(body) if content_type == crate::cbor::CONTENT_TYPE => crate::cbor::reply_to_cbor(&body),
        other => other,
    };
    if let Some(delay) = response_delay {
        tokio::time::sleep(delay).await;
    }
    Ok(match result {
        Ok(body) => response(200, content_type, body),
        Err(err) => {
            tracing::debug!(target: "stream_engine", %target, code = err.code, message = %err.message, "request failed");
            error_response(&err, content_type)
        }
    })
}

#[derive(Deserialize)]
struct OutageReq {
    duration_ms: u64,
    #[serde(default)]
    mode: OutageMode,
}

#[derive(Deserialize)]
struct AdvanceReq {
    ms: u64,
}

async fn admin(state: &State, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return response(
                400,
                "application/json",
                format!("{{\"error\":\"{e}\"}}").into_bytes(),
            );
        }
    };
    let ok = || response(200, "application/json", b"{\"ok\":true}".to_vec());
    let bad = |e: String| {
        response(
            400,
            "application/json",
            serde_json::json!({ "error": e }).to_string().into_bytes(),
        )
    };
    match (method, path.as_str()) {
        (Method::GET, "/_engine/health") => ok(),
        (Method::POST, "/_engine/faults") => match serde_json::from_slice::<FaultRule>(&body) {
            Ok(rule) => {
                state.faults.inject(rule);
                ok()
            }
            Err(e) => bad(e.to_string()),
        },
        (Method::POST, "/_engine/outage") => match serde_json::from_slice::<OutageReq>(&body) {
            Ok(o) => {
                state
                    .faults
                    .pause(Duration::from_millis(o.duration_ms), o.mode);
                ok()
            }
            Err(e) => bad(e.to_string()),
        },
        (Method::POST, "/_engine/resume") => {
            state.faults.resume();
            ok()
        }
        (Method::POST, "/_engine/reset") => {
            state.faults.clear();
            ok()
        }
        (Method::POST, "/_engine/clock/advance") => {
            match serde_json::from_slice::<AdvanceReq>(&body) {
                Ok(a) => {
                    state.clock.advance(Duration::from_millis(a.ms));
                    ok()
                }
                Err(e) => bad(e.to_string()),
            }
        }
        (Method::POST, "/_engine/retention/enforce") => {
            state.kinesis.enforce_retention();
            ok()
        }
        _ => response(
            404,
            "application/json",
            b"{\"error\":\"no such admin route\"}".to_vec(),
        ),
    }
}
