//! The API document (OpenAPI 3.1), generated from `hostdev-api`'s operation
//! table so that it cannot drift from the routes; `docs/openapi.json` is a
//! checked-in copy and a test fails when it is stale.
//! Owns: the document's shape. Must not: list a route the server lacks.

use hostdev_core::api::ops::routes;
use hostdev_core::api::Method;
use serde_json::{json, Map, Value};

fn error_responses() -> Value {
    let err = json!({"$ref": "#/components/schemas/ErrorBody"});
    let e = |d: &str| json!({"description": d, "content": {"application/json": {"schema": err}}});
    json!({
        "400": e("The request is not valid (unknown field, bad value)."),
        "403": e("The peer may not do this (root changes; the group reads)."),
        "404": e("No such route."),
        "408": e("The body did not arrive in time."),
        "409": e("The device or definition already exists."),
        "413": e("The body is too large."),
        "422": e("The operation failed; `code` says which step."),
        "503": e("The daemon is shutting down."),
    })
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in routes() {
        let (method, path, summary, req, reply) = (r.method, r.path, r.summary, r.request, r.reply);
        let mut op = json!({
            "summary": summary,
            "operationId": path.trim_start_matches("/v1/").replace('/', "_"),
            "responses": error_responses(),
        });
        op["responses"]["200"] = json!({
            "description": format!("The reply: {reply}."),
            "content": {"application/json": {"schema": {"x-rust-type": reply}}},
        });
        match method {
            Method::Get => {
                op["description"] = json!(format!(
                    "Readable by root and the configured group. Parameters are the fields of {req}, in the query string."
                ));
            }
            Method::Post => {
                op["description"] = json!("Root only; logged with the peer's uid and pid.");
                op["requestBody"] = json!({
                    "required": true,
                    "content": {"application/json": {"schema": {"x-rust-type": req}}},
                });
            }
        }
        let m = match method {
            Method::Get => "get",
            Method::Post => "post",
        };
        paths.insert(path.to_string(), json!({ m: op }));
    }
    paths.insert(
        "/v1/events".into(),
        json!({"get": {
            "summary": "Device changes, restores, failures and drift as JSON lines, as they happen.",
            "description": "`since=SEQ` first replays the kept events numbered after SEQ (the last 1024). Each line is an Event.",
            "parameters": [{"name": "since", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}}],
            "responses": {"200": {"description": "A stream of events.", "content": {"application/x-ndjson": {"schema": {"x-rust-type": "hostdev_api::events::Event"}}}}, "403": error_responses()["403"].clone()}
        }}),
    );
    paths.insert(
        "/metrics".into(),
        json!({"get": {
            "summary": "Prometheus metrics in text format.",
            "responses": {"200": {"description": "The exposition.", "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}, "403": error_responses()["403"].clone()}
        }}),
    );
    paths.insert(
        "/v1/openapi.json".into(),
        json!({"get": {
            "summary": "This document.",
            "responses": {"200": {"description": "OpenAPI 3.1.", "content": {"application/json": {"schema": {"type": "object"}}}}}
        }}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "hostdevd",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "hostdev's local API on a unix socket (default /run/hostdev/hostdev.sock). Requests and replies are hostdev-api's types; who may call is decided from the peer's SO_PEERCRED credentials.",
        },
        "paths": paths,
        "components": {"schemas": {"ErrorBody": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable machine code, e.g. mdev.no_capacity."},
                "message": {"type": "string", "description": "The error and its causes as one sentence."}
            }
        }}},
    })
}
