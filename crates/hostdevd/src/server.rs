//! The local API: HTTP/1.1 JSON on a unix socket, one route per operation of
//! `hostdev-api` (`/v1/...`), plus `/v1/events`, `/metrics` and
//! `/v1/openapi.json`. Every request carries the peer's kernel-reported
//! credentials; reads need the group, changes need root.
//! Owns: decoding requests into typed operations, authorization, encoding
//! replies and errors (the HTTP status follows from the error's class),
//! sending a read's kept reply again while the core says it is fresh,
//! logging changes and telling watchers of each (a `changed` event naming
//! the operation, its target and the peer). Must not: run an operation
//! itself (the core does, through [`Shared::run`]) or single out an
//! operation by its type at run time.

use crate::auth::{role, Peer, Role};
use crate::state::{HostOf, NotRun, Nudge, Shared};
use axum::body::{Body, Bytes};
use axum::extract::{Extension, RawQuery, State};
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hostdev_core::api::events::EventKind;
use hostdev_core::api::{self, ErrorBody, ErrorClass, Method, Op};
use hostdev_core::{CoreError, Handle, Kernel};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An error as the API answers it: a status (from the class) and the body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(class: ErrorClass, code: &str, message: impl Into<String>) -> ApiError {
        ApiError::from(ErrorBody::new(class, code, message))
    }

    /// A core failure; an error that names nothing is said to concern what
    /// the request named.
    fn core<O: Op>(e: &CoreError, req: Option<&O>) -> ApiError {
        let mut body = e.body();
        if body.target.is_none() {
            body.target = req.and_then(Op::concerns);
        }
        ApiError::from(body)
    }
}

impl From<ErrorBody> for ApiError {
    fn from(body: ErrorBody) -> ApiError {
        let status =
            StatusCode::from_u16(body.class.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError { status, body }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, &self.body)
    }
}

fn json_response<T: serde::Serialize>(status: StatusCode, v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(b) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            b,
        )
            .into_response(),
        Err(e) => json_bytes(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::to_vec(&ErrorBody::new(
                ErrorClass::Internal,
                "daemon.encode",
                format!("the reply could not be encoded: {e}"),
            ))
            .unwrap_or_default()
            .into(),
        ),
    }
}

fn json_bytes(status: StatusCode, b: Bytes) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        b,
    )
        .into_response()
}

fn allow<K: Kernel>(s: &Shared<K>, peer: &Peer, needs: Role, what: &str) -> Result<(), ApiError> {
    let has = role(peer, s.readers);
    if has >= needs {
        return Ok(());
    }
    let why = match needs {
        Role::Root => "only root may change devices".to_string(),
        _ => format!(
            "only root and members of the group '{}' may use hostdevd",
            s.config.group
        ),
    };
    Err(ApiError::new(
        ErrorClass::Forbidden,
        "auth.forbidden",
        format!("uid {} (pid {}) may not {what}: {why}", peer.uid, peer.pid),
    ))
}

/// Reads the whole body within the size and time limits.
async fn read_body<K: Kernel>(s: &Shared<K>, body: Body) -> Result<Bytes, ApiError> {
    let limit = s.config.max_body_bytes;
    let t = Duration::from_secs(s.config.request_timeout_secs);
    match tokio::time::timeout(t, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ApiError::new(
            ErrorClass::Timeout,
            "request.timeout",
            format!("the request body did not arrive within {} s", t.as_secs()),
        )),
        Ok(Err(_)) => Err(ApiError::new(
            ErrorClass::TooLarge,
            "request.too_large",
            format!("the request body is larger than {limit} bytes, or was cut off"),
        )),
        Ok(Ok(b)) => Ok(b),
    }
}

/// Decodes an operation from the query string (GET) or JSON body (POST).
pub fn decode<O: Op>(query: Option<&str>, body: &[u8]) -> Result<O, ApiError> {
    hostdev_api::wire::decode_request(query, body).map_err(|e| {
        ApiError::new(
            ErrorClass::Invalid,
            "request.invalid",
            format!("the request for {} is not valid: {e}", O::PATH),
        )
    })
}

async fn op<K, O>(
    State(s): State<Arc<Shared<K>>>,
    Extension(peer): Extension<Peer>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response
where
    K: Kernel,
    O: Op,
    HostOf<K>: Handle<O>,
{
    let t0 = Instant::now();
    let r = answer::<K, O>(&s, &peer, query, body).await;
    s.metrics.request(O::PATH, t0.elapsed().as_secs_f64());
    if O::METHOD == Method::Post {
        match &r {
            Ok(_) => tracing::info!(uid = peer.uid, pid = peer.pid, path = O::PATH, "done"),
            Err(e) => tracing::info!(
                uid = peer.uid,
                pid = peer.pid,
                path = O::PATH,
                code = %e.body.code,
                "refused or failed: {}",
                e.body.message
            ),
        }
    }
    match r {
        Ok(resp) => resp,
        Err(e) => {
            s.metrics.error(&e.body.code);
            e.into_response()
        }
    }
}

fn stopping() -> ApiError {
    ApiError::new(
        ErrorClass::Stopping,
        "daemon.stopping",
        "hostdevd is shutting down and takes no new operations",
    )
}

fn not_run(n: NotRun, path: &str) -> ApiError {
    match n {
        NotRun::Stopping => stopping(),
        NotRun::Panicked => ApiError::new(
            ErrorClass::Internal,
            "daemon.panicked",
            format!(
                "the operation {path} stopped on an internal error (a panic); the daemon goes on"
            ),
        ),
    }
}

async fn answer<K, O>(
    s: &Arc<Shared<K>>,
    peer: &Peer,
    query: Option<String>,
    body: Body,
) -> Result<Response, ApiError>
where
    K: Kernel,
    O: Op,
    HostOf<K>: Handle<O>,
{
    let (needs, what) = match O::METHOD {
        Method::Get => (Role::Reader, "read"),
        Method::Post => (Role::Root, "change devices"),
    };
    // The body is read before the peer is refused: a refusal sent while
    // the request is still unread is lost to a client whose connection
    // the close resets (a relay, a slow writer).
    let bytes = read_body(s, body).await?;
    allow(s, peer, needs, what)?;
    let req: O = decode(query.as_deref(), &bytes)?;
    if O::METHOD == Method::Get {
        // A read: sent again from what is kept while the core says the
        // host is unchanged for it (the inventory of a large host).
        let key = format!("{}?{}", O::PATH, query.unwrap_or_default());
        let json = s
            .run_op(move |sh| {
                let sys = sh.system();
                let fresh = sys.freshness(&req);
                sh.kept_or(&key, fresh, || {
                    let reply = sys
                        .handle(&req)
                        .map_err(|e| ApiError::core(&e, Some(&req)))?;
                    serde_json::to_vec(&reply).map(Bytes::from).map_err(|e| {
                        ApiError::new(
                            ErrorClass::Internal,
                            "daemon.encode",
                            format!("the reply could not be encoded: {e}"),
                        )
                    })
                })
            })
            .await
            .map_err(|n| not_run(n, O::PATH))??;
        return Ok(json_bytes(StatusCode::OK, json));
    }
    let concerns = req.concerns();
    let reply = s
        .run_op(move |sh| {
            sh.system()
                .handle(&req)
                .map_err(|e| ApiError::core(&e, Some(&req)))
        })
        .await
        .map_err(|n| not_run(n, O::PATH))??;
    if let Some(r) = O::restore_report(&reply) {
        crate::watch::report_restore(s, "request", r);
    }
    s.publish(EventKind::Changed {
        operation: O::PATH.to_string(),
        target: concerns,
        uid: peer.uid,
        pid: peer.pid,
    });
    let _ = s.nudge.try_send(Nudge::Changed);
    Ok(json_response(StatusCode::OK, &reply))
}

/// `GET /v1/events[?since=SEQ]`: JSON lines, the kept ones after `since` first.
async fn events<K: Kernel>(
    State(s): State<Arc<Shared<K>>>,
    Extension(peer): Extension<Peer>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(e) = allow(&s, &peer, Role::Reader, "read events") {
        return e.into_response();
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Q {
        since: Option<u64>,
    }
    let q: Q = match serde_urlencoded::from_str(query.as_deref().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => {
            return ApiError::new(
                ErrorClass::Invalid,
                "request.invalid",
                format!("the request for /v1/events is not valid: {e}"),
            )
            .into_response()
        }
    };
    let (past, rx) = s.subscribe(q.since);
    let stopping = s.stopping.subscribe();
    let line = |e: &api::events::Event| {
        let mut v = serde_json::to_vec(e).unwrap_or_default();
        v.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(v))
    };
    let head = futures_util::stream::iter(past.iter().map(line).collect::<Vec<_>>());
    let tail = futures_util::stream::unfold((rx, stopping), move |(mut rx, mut stop)| async move {
        loop {
            if *stop.borrow() {
                return None;
            }
            tokio::select! {
                _ = stop.changed() => return None,
                r = rx.recv() => match r {
                    Ok(e) => return Some((line(&e), (rx, stop))),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    });
    let stream = futures_util::StreamExt::chain(head, tail);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        )],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn metrics<K: Kernel>(
    State(s): State<Arc<Shared<K>>>,
    Extension(peer): Extension<Peer>,
) -> Response {
    if let Err(e) = allow(&s, &peer, Role::Reader, "read metrics") {
        return e.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn openapi<K: Kernel>(
    State(s): State<Arc<Shared<K>>>,
    Extension(peer): Extension<Peer>,
) -> Response {
    if let Err(e) = allow(&s, &peer, Role::Reader, "read the API document") {
        return e.into_response();
    }
    json_response(StatusCode::OK, &crate::openapi::document())
}

/// Reads (a bounded part of) a request body that will not be used, so
/// that the answer is not lost to a reset of a connection closed unread.
async fn drain(body: Body) {
    let _ = tokio::time::timeout(Duration::from_secs(5), axum::body::to_bytes(body, 1 << 20)).await;
}

async fn wrong_method(req: Request<Body>) -> ApiError {
    let (parts, body) = req.into_parts();
    drain(body).await;
    let req = Request::from_parts(parts, ());
    ApiError::new(
        ErrorClass::Unsupported,
        "request.method",
        format!(
            "{} takes no {} (reads are GET, changes POST; see /v1/openapi.json)",
            req.uri().path(),
            req.method()
        ),
    )
}

async fn not_found(req: Request<Body>) -> ApiError {
    let (parts, body) = req.into_parts();
    drain(body).await;
    let req = Request::from_parts(parts, ());
    ApiError::new(
        ErrorClass::NotFound,
        "request.no_route",
        format!(
            "there is no {} {} in hostdevd's API (see /v1/openapi.json)",
            req.method(),
            req.uri().path()
        ),
    )
}

fn route<K, O>(r: Router<Arc<Shared<K>>>) -> Router<Arc<Shared<K>>>
where
    K: Kernel,
    O: Op,
    HostOf<K>: Handle<O>,
{
    match O::METHOD {
        Method::Get => r.route(O::PATH, get(op::<K, O>)),
        Method::Post => r.route(O::PATH, post(op::<K, O>)),
    }
}

/// Every route, over the kernel `s` serves.
pub fn router<K: Kernel>(s: Arc<Shared<K>>) -> Router {
    let mut r = Router::new();
    macro_rules! every {
        ($($t:ty),*) => { $(r = route::<K, $t>(r);)* };
    }
    hostdev_core::api::with_every_op!(every);
    r.route("/v1/events", get(events::<K>))
        .route("/metrics", get(metrics::<K>))
        .route("/v1/openapi.json", get(openapi::<K>))
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .with_state(s)
}
