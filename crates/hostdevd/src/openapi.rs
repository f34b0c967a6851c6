//! The API document (OpenAPI 3.1), generated from `hostdev-api`'s operation
//! table and the JSON Schemas of its types, so that it cannot drift from the
//! routes or the shapes; `docs/openapi.json` is a checked-in copy and a test
//! fails when it is stale.
//! Owns: the document's shape: one path per operation (a read's fields as
//! query parameters, a change's request as its body), every reply's and
//! error's schema, the statuses by error class, the events. Must not: list a
//! route the server lacks.

use hostdev_api::events::Event;
use hostdev_api::{ErrorBody, ErrorClass, Method, Op};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

/// Where the schemas live in the document.
const SCHEMAS: &str = "/components/schemas";

fn generator() -> SchemaGenerator {
    let mut s = SchemaSettings::draft2020_12();
    s.definitions_path = SCHEMAS.into();
    // A field left out of a reply is absent, not null: say what is sent.
    s.meta_schema = None;
    SchemaGenerator::new(s)
}

/// `{"$ref": …}` of `T`, its schema (and those it names) kept in `g`.
fn schema_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    serde_json::to_value(g.subschema_for::<T>()).unwrap_or(Value::Null)
}

/// The error responses of an operation: a reference to the shared
/// response of each status its classes give.
fn error_responses(classes: &[ErrorClass]) -> Map<String, Value> {
    let mut out = Map::new();
    for c in classes {
        let status = c.status().to_string();
        let r = json!({"$ref": format!("#/components/responses/{status}")});
        out.insert(status, r);
    }
    out
}

/// One shared response per error status, naming the classes that give it.
fn shared_responses(g: &mut SchemaGenerator) -> Map<String, Value> {
    let err = schema_of::<ErrorBody>(g);
    let mut out: Map<String, Value> = Map::new();
    for c in ErrorClass::ALL {
        let status = c.status().to_string();
        let said = out
            .get(&status)
            .and_then(|v| v["description"].as_str())
            .map(|d| format!("{d}; or class `{}`: {}", c.as_str(), describe(c)))
            .unwrap_or_else(|| format!("class `{}`: {}", c.as_str(), describe(c)));
        out.insert(
            status,
            json!({"description": said, "content": {"application/json": {"schema": err}}}),
        );
    }
    out
}

fn describe(c: ErrorClass) -> &'static str {
    match c {
        ErrorClass::Invalid => "the request, or a value in it, cannot be used",
        ErrorClass::Forbidden => "the peer may not do this (changes are root's; reads the group's)",
        ErrorClass::NotFound => "something the request names is not there",
        ErrorClass::Unsupported => "the route takes no such method",
        ErrorClass::Timeout => "the request did not arrive in time",
        ErrorClass::Exists => "what the request would make exists already",
        ErrorClass::Conflict => "the device or state is busy or held by someone else",
        ErrorClass::TooLarge => "the request body is too large",
        ErrorClass::Failed => "a step on the host failed; `code` says which",
        ErrorClass::Exhausted => "no capacity is left",
        ErrorClass::Unavailable => "a kernel interface the request needs is not on the host now",
        ErrorClass::Internal => "a defect in hostdev",
        ErrorClass::Stopping => "the daemon is shutting down",
    }
}

/// A read's request fields as query parameters (its schema is a flat object).
fn query_parameters(g: &mut SchemaGenerator, request: &Value) -> Vec<Value> {
    let Some(name) = request["$ref"].as_str().and_then(|r| r.rsplit('/').next()) else {
        return Vec::new();
    };
    let defs = g.definitions().clone();
    let Some(schema) = defs.get(name) else {
        return Vec::new();
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    if let Some(props) = schema["properties"].as_object() {
        for (k, v) in props {
            // A query string cannot say null: an absent parameter is None.
            let v = &without_null(v);
            let mut p = json!({
                "name": k,
                "in": "query",
                "required": required.contains(&k.as_str()),
                "schema": v,
            });
            if let Some(d) = v["description"].as_str() {
                p["description"] = json!(d);
            }
            out.push(p);
        }
    }
    out
}

/// `anyOf: [X, {"type": "null"}]` as X (keeping the description).
fn without_null(v: &Value) -> Value {
    let Some(alts) = v["anyOf"].as_array() else {
        return v.clone();
    };
    let rest: Vec<&Value> = alts.iter().filter(|a| a["type"] != "null").collect();
    match rest.as_slice() {
        [one] => {
            let mut x = (*one).clone();
            if let (Some(d), Some(o)) = (v["description"].as_str(), x.as_object_mut()) {
                o.insert("description".into(), json!(d));
            }
            x
        }
        _ => v.clone(),
    }
}

fn operation<O: Op>(g: &mut SchemaGenerator) -> (String, Value) {
    let request = schema_of::<O>(g);
    let reply = schema_of::<O::Reply>(g);
    let mut classes: Vec<ErrorClass> = ErrorClass::ALL
        .into_iter()
        .filter(|c| *c != ErrorClass::Unsupported)
        .collect();
    if O::METHOD == Method::Get {
        // A read takes no body: it is never too large or slow to arrive.
        classes.retain(|c| !matches!(c, ErrorClass::TooLarge | ErrorClass::Timeout));
    }
    let mut responses = error_responses(&classes);
    responses.insert(
        "200".into(),
        json!({"description": "The reply.", "content": {"application/json": {"schema": reply}}}),
    );
    let mut op = json!({
        "summary": O::SUMMARY,
        "operationId": O::PATH.trim_start_matches("/v1/").replace('/', "_"),
        "responses": responses,
    });
    let m = match O::METHOD {
        Method::Get => {
            op["description"] = json!(
                "Readable by root and the configured group. The request's fields are query parameters."
            );
            op["parameters"] = Value::Array(query_parameters(g, &request));
            "get"
        }
        Method::Post => {
            op["description"] = json!("Root only; logged with the peer's uid and pid, and told to watchers as a `changed` event.");
            op["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": request}},
            });
            "post"
        }
    };
    (O::PATH.to_string(), json!({ m: op }))
}

/// The whole document.
pub fn document() -> Value {
    let mut g = generator();
    let mut paths = Map::new();
    macro_rules! every {
        ($($t:ty),*) => { $(
            let (path, item) = operation::<$t>(&mut g);
            paths.insert(path, item);
        )* };
    }
    hostdev_api::with_every_op!(every);
    let event = schema_of::<Event>(&mut g);
    let responses = shared_responses(&mut g);
    let forbidden = error_responses(&[ErrorClass::Forbidden]);
    let invalid = error_responses(&[ErrorClass::Invalid, ErrorClass::Forbidden]);
    let mut ev_responses = invalid;
    ev_responses.insert(
        "200".into(),
        json!({"description": "A stream of events, one JSON object per line.", "content": {"application/x-ndjson": {"schema": event}}}),
    );
    paths.insert(
        "/v1/events".into(),
        json!({"get": {
            "summary": "Device changes, changes asked through the API, restores, failures and drift as JSON lines, as they happen.",
            "description": "`since=SEQ` first replays the kept events numbered after SEQ (the last 1024). Each line is an Event.",
            "operationId": "events",
            "parameters": [{"name": "since", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "format": "uint64"}}],
            "responses": ev_responses,
        }}),
    );
    let mut m_responses = forbidden.clone();
    m_responses.insert(
        "200".into(),
        json!({"description": "The exposition.", "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}),
    );
    paths.insert(
        "/metrics".into(),
        json!({"get": {"summary": "Prometheus metrics in OpenMetrics text format.", "operationId": "metrics", "responses": m_responses}}),
    );
    let mut d_responses = forbidden;
    d_responses.insert(
        "200".into(),
        json!({"description": "OpenAPI 3.1.", "content": {"application/json": {"schema": {"type": "object"}}}}),
    );
    paths.insert(
        "/v1/openapi.json".into(),
        json!({"get": {"summary": "This document.", "operationId": "openapi", "responses": d_responses}}),
    );
    let schemas = Value::Object(g.take_definitions(true).into_iter().collect());
    let classes: Vec<Value> = ErrorClass::ALL
        .iter()
        .map(|c| json!({"class": c.as_str(), "status": c.status(), "meaning": describe(*c)}))
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "hostdevd",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "hostdev's local API on a unix socket (default /run/hostdev/hostdev.sock). Requests and replies are hostdev-api's types, each with its JSON Schema below; who may call is decided from the peer's SO_PEERCRED credentials. Every error is an ErrorBody whose `class` says what a caller can do, and the HTTP status follows from the class alone (x-error-classes).",
            "x-error-classes": classes,
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {"schemas": schemas, "responses": responses},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves_and_every_route_is_there() {
        let d = document();
        let text = d.to_string();
        let schemas = d["components"]["schemas"].as_object().expect("schemas");
        for (i, _) in text.match_indices("\"$ref\":\"#/components/schemas/") {
            let rest = &text[i + "\"$ref\":\"#/components/schemas/".len()..];
            let name = &rest[..rest.find('"').expect("end")];
            assert!(
                schemas.contains_key(name),
                "{name} is referenced, not defined"
            );
        }
        for r in hostdev_api::ops::routes() {
            assert!(d["paths"][r.path].is_object(), "{}", r.path);
        }
        assert!(schemas.contains_key("ErrorBody"));
        assert!(schemas.contains_key("Event"));
    }
}
