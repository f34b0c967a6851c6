//! The daemon's client: one [`Op`] as one HTTP/1.1 request on the daemon's
//! unix socket, answered with the operation's reply or an [`ErrorBody`].
//! Front-ends use it when the socket answers and act directly otherwise.
//! Owns: the wire form of a call (method, path, query string or JSON body)
//! and reading the answer. Must not: retry a change (a change sent is never
//! redone directly), or decide anything about the operation itself.
//!
//! A program that only calls hostdevd depends on `hostdev-api` with the
//! `client` feature and links no host code (no sysfs, store or SQLite):
//! `examples/devices.rs` is one, and a test holds `cargo tree` to that.

use crate::wire::request_parts;
use crate::{ErrorBody, ErrorClass, Method, Op};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::DEFAULT_SOCKET;

/// Why a call through the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// Sending the request or reading the answer failed.
    #[error("the daemon at {path} stopped answering")]
    Io {
        /// The socket.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The answer was not what the API promises.
    #[error("the daemon at {path} gave an answer that is not hostdev's API: {detail}")]
    Protocol {
        /// The socket.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The daemon refused or the operation failed; its code and sentence.
    #[error("{}", .body.message)]
    Api {
        /// HTTP status.
        status: u16,
        /// The daemon's error body.
        body: ErrorBody,
    },
}

impl RemoteError {
    /// The stable code: the daemon's, or `daemon.io` / `daemon.protocol`.
    pub fn code(&self) -> &str {
        match self {
            RemoteError::Io { .. } => "daemon.io",
            RemoteError::Protocol { .. } => "daemon.protocol",
            RemoteError::Api { body, .. } => &body.code,
        }
    }

    /// What a program can do about it: the daemon's class, or `stopping`
    /// when the daemon stopped answering (`internal` for an answer that is
    /// not the API's).
    pub fn class(&self) -> ErrorClass {
        match self {
            RemoteError::Io { .. } => ErrorClass::Stopping,
            RemoteError::Protocol { .. } => ErrorClass::Internal,
            RemoteError::Api { body, .. } => body.class,
        }
    }

    /// The daemon's error body; for a failure to ask it, one made here.
    pub fn body(&self) -> ErrorBody {
        match self {
            RemoteError::Api { body, .. } => body.clone(),
            other => ErrorBody::new(other.class(), other.code(), other.to_string()),
        }
    }
}

/// A connection to a daemon that answered.
#[derive(Debug)]
pub struct Daemon {
    path: PathBuf,
    stream: UnixStream,
}

impl Daemon {
    /// Connects to the daemon at `path`; `None` when nothing answers there
    /// (no socket, nobody listening, or not allowed to connect).
    pub fn connect(path: &Path) -> Option<Daemon> {
        let stream = UnixStream::connect(path).ok()?;
        Some(Daemon {
            path: path.to_path_buf(),
            stream,
        })
    }

    /// Sends one operation and reads its reply; the connection is used once.
    pub fn call<O: Op>(mut self, op: &O, timeout: Duration) -> Result<O::Reply, RemoteError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RemoteError::Io { path, source }
        };
        let (target, body) = request_parts(op).map_err(|detail| RemoteError::Protocol {
            path: self.path.clone(),
            detail,
        })?;
        let method = match O::METHOD {
            Method::Get => "GET",
            Method::Post => "POST",
        };
        let mut req = format!(
            "{method} {target} HTTP/1.1\r\nHost: hostdev\r\nConnection: close\r\nAccept: application/json\r\n"
        );
        if let Some(b) = &body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend(body.unwrap_or_default());
        let _ = self.stream.set_read_timeout(Some(timeout));
        let _ = self.stream.set_write_timeout(Some(timeout));
        self.stream.write_all(&bytes).map_err(io(&self.path))?;
        // Large answers (an inventory) are read without a dozen regrowths.
        let mut answer = Vec::with_capacity(256 * 1024);
        self.stream
            .read_to_end(&mut answer)
            .map_err(io(&self.path))?;
        let protocol = |detail: String| RemoteError::Protocol {
            path: self.path.clone(),
            detail,
        };
        let (status, body) = parse_response(&answer).map_err(protocol)?;
        if (200..300).contains(&status) {
            serde_json::from_slice(&body).map_err(|e| protocol(e.to_string()))
        } else {
            let body = serde_json::from_slice::<ErrorBody>(&body).unwrap_or_else(|_| {
                let text = String::from_utf8_lossy(&body);
                let text: String = text.trim().chars().take(512).collect();
                ErrorBody::new(
                    ErrorClass::from_status(status),
                    "daemon.http",
                    format!("the daemon answered HTTP {status}: {text}"),
                )
            });
            Err(RemoteError::Api { status, body })
        }
    }
}

/// Status and body of an HTTP/1.1 response (Content-Length, chunked, or to EOF).
fn parse_response(r: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = r
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the answer has no complete header")?;
    let head = std::str::from_utf8(&r[..end]).map_err(|_| "the header is not text")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if k.eq_ignore_ascii_case("content-length") {
            length = v.parse::<usize>().ok();
        }
    }
    let rest = &r[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest.get(..n)
            .ok_or("the body is shorter than announced")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok((status, body))
}

fn dechunk(mut r: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let nl = r
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk size line is cut off")?;
        let size_text = std::str::from_utf8(&r[..nl]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        r = &r[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(r.get(..size).ok_or("a chunk is cut off")?);
        r = r.get(size + 2..).ok_or("a chunk is cut off")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_with_length_chunks_or_eof() {
        let a = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(a).unwrap(), (200, b"{}".to_vec()));
        let b = b"HTTP/1.1 403 Forbidden\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(b).unwrap(), (403, b"abcde".to_vec()));
        let c = b"HTTP/1.1 200 OK\r\n\r\nxyz";
        assert_eq!(parse_response(c).unwrap(), (200, b"xyz".to_vec()));
        assert!(parse_response(b"HTTP/1.1 200").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nab").is_err());
        assert!(parse_response(b"junk\r\n\r\n").is_err());
    }
}
