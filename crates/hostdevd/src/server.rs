//! The local API: HTTP/1.1 JSON on a unix socket, one route per operation of
//! `hostdev-api` (`/v1/...`), plus `/v1/events`, `/metrics` and
//! `/v1/openapi.json`. Every request carries the peer's kernel-reported
//! credentials; reads need the group, changes need root.
//! Owns: accepting connections (with limits and timeouts), decoding requests
//! into typed operations, authorization, encoding replies and errors,
//! logging changes. Must not: run an operation itself (the core does, through
//! [`Shared::run`]).

use crate::auth::{role, Peer, Role};
use crate::state::{Nudge, Shared};
use axum::body::{Body, Bytes};
use axum::extract::{Extension, RawQuery, State};
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hostdev_core::api::{self, ErrorBody, Method, Op};
use hostdev_core::{CoreError, Handle, System};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An error as the API answers it: a status and `{code, message}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                code: code.into(),
                message: message.into(),
            },
        }
    }

    fn core(e: &CoreError) -> ApiError {
        let status = if e.is_exists() {
            StatusCode::CONFLICT
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        ApiError {
            status,
            body: hostdev_core::restore::error_body(e),
        }
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
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn allow(s: &Shared, peer: &Peer, needs: Role, what: &str) -> Result<(), ApiError> {
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
        StatusCode::FORBIDDEN,
        "auth.forbidden",
        format!("uid {} (pid {}) may not {what}: {why}", peer.uid, peer.pid),
    ))
}

/// Reads the whole body within the size and time limits.
async fn read_body(s: &Shared, body: Body) -> Result<Bytes, ApiError> {
    let limit = s.config.max_body_bytes;
    let t = Duration::from_secs(s.config.request_timeout_secs);
    match tokio::time::timeout(t, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request.timeout",
            format!("the request body did not arrive within {} s", t.as_secs()),
        )),
        Ok(Err(_)) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request.too_large",
            format!("the request body is larger than {limit} bytes, or was cut off"),
        )),
        Ok(Ok(b)) => Ok(b),
    }
}

/// Decodes an operation from the query string (GET) or JSON body (POST).
pub fn decode<O: Op>(query: Option<&str>, body: &[u8]) -> Result<O, ApiError> {
    hostdev_core::remote::decode_request(query, body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "request.invalid",
            format!("the request for {} is not valid: {e}", O::PATH),
        )
    })
}

async fn op<O>(
    State(s): State<Arc<Shared>>,
    Extension(peer): Extension<Peer>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response
where
    O: Op,
    System: Handle<O>,
{
    let t0 = Instant::now();
    let r = answer::<O>(&s, &peer, query, body).await;
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
        StatusCode::SERVICE_UNAVAILABLE,
        "daemon.stopping",
        "hostdevd is shutting down and takes no new operations",
    )
}

async fn answer<O>(
    s: &Arc<Shared>,
    peer: &Peer,
    query: Option<String>,
    body: Body,
) -> Result<Response, ApiError>
where
    O: Op,
    System: Handle<O>,
{
    let (needs, what) = match O::METHOD {
        Method::Get => (Role::Reader, "read"),
        Method::Post => (Role::Root, "change devices"),
    };
    allow(s, peer, needs, what)?;
    let bytes = read_body(s, body).await?;
    let req: O = decode(query.as_deref(), &bytes)?;
    // The one reply worth keeping whole: thousands of rows on a large host.
    if (&req as &dyn std::any::Any).is::<api::InventoryQuery>() {
        let json = s
            .run(|sh| sh.inventory_json())
            .await
            .ok_or_else(stopping)?
            .map_err(|e| ApiError::core(&e))?
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "daemon.encode",
                    format!("the inventory could not be encoded: {e}"),
                )
            })?;
        return Ok((
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json,
        )
            .into_response());
    }
    let reply = s
        .run(move |sh| sh.system().handle(&req))
        .await
        .ok_or_else(stopping)?
        .map_err(|e| ApiError::core(&e))?;
    // A restore asked for is reported like the daemon's own.
    if let Some(r) = (&reply as &dyn std::any::Any).downcast_ref::<api::RestoreReport>() {
        crate::watch::report_restore(s, "request", r);
    }
    if O::METHOD == Method::Post {
        let _ = s.nudge.try_send(Nudge::Changed);
    }
    Ok(json_response(StatusCode::OK, &reply))
}

/// `GET /v1/events[?since=SEQ]`: JSON lines, the kept ones after `since` first.
async fn events(
    State(s): State<Arc<Shared>>,
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
                StatusCode::BAD_REQUEST,
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

async fn metrics(State(s): State<Arc<Shared>>, Extension(peer): Extension<Peer>) -> Response {
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

async fn openapi(State(s): State<Arc<Shared>>, Extension(peer): Extension<Peer>) -> Response {
    if let Err(e) = allow(&s, &peer, Role::Reader, "read the API document") {
        return e.into_response();
    }
    json_response(StatusCode::OK, &crate::openapi::document())
}

async fn wrong_method(req: Request<Body>) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "request.method",
        format!(
            "{} takes no {} (reads are GET, changes POST; see /v1/openapi.json)",
            req.uri().path(),
            req.method()
        ),
    )
}

async fn not_found(req: Request<Body>) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "request.no_route",
        format!(
            "there is no {} {} in hostdevd's API (see /v1/openapi.json)",
            req.method(),
            req.uri().path()
        ),
    )
}

fn route<O>(r: Router<Arc<Shared>>) -> Router<Arc<Shared>>
where
    O: Op,
    System: Handle<O>,
{
    match O::METHOD {
        Method::Get => r.route(O::PATH, get(op::<O>)),
        Method::Post => r.route(O::PATH, post(op::<O>)),
    }
}

/// Every route.
pub fn router(s: Arc<Shared>) -> Router {
    let mut r = Router::new();
    macro_rules! every {
        ($($t:ty),*) => { $(r = route::<$t>(r);)* };
    }
    hostdev_core::api::with_every_op!(every);
    r.route("/v1/events", get(events))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .with_state(s)
}
