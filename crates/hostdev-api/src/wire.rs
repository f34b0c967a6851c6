//! The wire form of an operation, shared by the client and the daemon: an
//! [`Op`] as a request target (path and query string) and JSON body, and
//! decoded back exactly as the daemon receives it.
//!
//! Owns: encoding and decoding requests. Must not: open sockets (the client
//! does) or decide anything about the operation.

use crate::{Method, Op};

/// An operation's request target (path and query string) and JSON body.
pub fn request_parts<O: Op>(op: &O) -> Result<(String, Option<Vec<u8>>), String> {
    Ok(match O::METHOD {
        Method::Get => {
            let q = query_string(op)?;
            let t = if q.is_empty() {
                O::PATH.to_string()
            } else {
                format!("{}?{q}", O::PATH)
            };
            (t, None)
        }
        Method::Post => (
            O::PATH.to_string(),
            Some(serde_json::to_vec(op).map_err(|e| e.to_string())?),
        ),
    })
}

/// Decodes an operation as the daemon receives it: from the query string
/// (GET) or the JSON body (POST; an empty body is `{}`). The error is the
/// decoder's sentence.
pub fn decode_request<O: Op>(query: Option<&str>, body: &[u8]) -> Result<O, String> {
    match O::METHOD {
        Method::Get => serde_urlencoded::from_str(query.unwrap_or("")).map_err(|e| e.to_string()),
        Method::Post => {
            let body = if body.iter().all(u8::is_ascii_whitespace) {
                &b"{}"[..]
            } else {
                body
            };
            serde_json::from_slice(body).map_err(|e| e.to_string())
        }
    }
}

/// The request's fields as `a=b&c=d`, percent-encoded; absent fields left out.
fn query_string<O: serde::Serialize>(op: &O) -> Result<String, String> {
    let v = serde_json::to_value(op).map_err(|e| e.to_string())?;
    let serde_json::Value::Object(map) = v else {
        return Err("a query must be an object".into());
    };
    let mut parts = Vec::new();
    for (k, v) in map {
        let s = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        parts.push(format!("{}={}", encode(&k), encode(&s)));
    }
    Ok(parts.join("&"))
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_their_wire_form() {
        fn rt<O: Op + PartialEq + std::fmt::Debug>(op: O) {
            let (target, body) = request_parts(&op).unwrap();
            let query = target.split_once('?').map(|(_, q)| q);
            let back: O = decode_request(query, body.as_deref().unwrap_or_default()).unwrap();
            assert_eq!(back, op);
        }
        rt(crate::ListQuery {
            defined: true,
            uuid: Some("83b8f4f2-509f-382f-3c1e-e6bfe0fa1001".parse().unwrap()),
            parent: Some("a b&c=/%".into()),
        });
        rt(crate::TypesQuery { parent: None });
        rt(crate::InventoryQuery {});
        rt(crate::RestoreRequest { wait_secs: 3 });
        rt(crate::StopRequest {
            uuid: "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001".parse().unwrap(),
        });
        assert!(decode_request::<crate::ListQuery>(Some("bogus=1"), b"").is_err());
        assert!(decode_request::<crate::ListQuery>(Some("uuid=../../etc"), b"").is_err());
        assert!(decode_request::<crate::StopRequest>(None, b"{").is_err());
        assert!(decode_request::<crate::StopRequest>(None, b" ").is_err());
    }

    #[test]
    fn query_strings_encode_and_skip_absent_fields() {
        let q = crate::ListQuery {
            defined: true,
            uuid: None,
            parent: Some("a b&c=/".into()),
        };
        assert_eq!(
            query_string(&q).unwrap(),
            "defined=true&parent=a%20b%26c%3D%2F"
        );
    }
}
