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

/// The longest event line read (a restore's report is the largest event).
pub const MAX_EVENT_LINE: u64 = 4 << 20;

/// The daemon's event stream (`GET /v1/events`), one event at a time, as
/// the daemon sends them (JSON lines in a chunked body).
#[derive(Debug)]
pub struct Events {
    path: PathBuf,
    body: std::io::BufReader<Body>,
    line: Vec<u8>,
}

impl Daemon {
    /// Follows the daemon's events: those after `since` it still keeps,
    /// then each as it happens. Reads wait as long as the daemon is quiet.
    pub fn events(mut self, since: Option<u64>) -> Result<Events, RemoteError> {
        let path = self.path.clone();
        let io = |source| RemoteError::Io {
            path: path.clone(),
            source,
        };
        let target = match since {
            Some(s) => format!("/v1/events?since={s}"),
            None => "/v1/events".to_string(),
        };
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: hostdev\r\nConnection: close\r\nAccept: application/x-ndjson\r\n\r\n"
        );
        self.stream.write_all(req.as_bytes()).map_err(io)?;
        let mut r = std::io::BufReader::new(self.stream);
        // The header, bounded.
        let mut head = Vec::new();
        loop {
            let mut l = Vec::new();
            let n = std::io::BufRead::read_until(&mut (&mut r).take(8192), b'\n', &mut l)
                .map_err(io)?;
            if n == 0 || !l.ends_with(b"\n") || head.len() > 64 * 1024 {
                return Err(RemoteError::Protocol {
                    path: path.clone(),
                    detail: "the answer to /v1/events has no complete header".into(),
                });
            }
            head.extend_from_slice(&l);
            if l == b"\r\n" {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head);
        let status: u16 = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| RemoteError::Protocol {
                path: path.clone(),
                detail: "the answer to /v1/events has no status".into(),
            })?;
        let chunked = text.lines().any(|l| {
            l.split_once(':').is_some_and(|(k, v)| {
                k.eq_ignore_ascii_case("transfer-encoding")
                    && v.trim().eq_ignore_ascii_case("chunked")
            })
        });
        if !(200..300).contains(&status) {
            // A refusal: the whole (small) answer, parsed as any other.
            let mut rest = Vec::new();
            let _ = r.take(64 * 1024).read_to_end(&mut rest);
            let mut whole = head;
            whole.extend(rest);
            let (_, body) = parse_response(&whole).map_err(|detail| RemoteError::Protocol {
                path: path.clone(),
                detail,
            })?;
            let body = serde_json::from_slice::<ErrorBody>(&body).unwrap_or_else(|_| {
                ErrorBody::new(
                    ErrorClass::from_status(status),
                    "daemon.http",
                    format!("the daemon answered HTTP {status} to /v1/events"),
                )
            });
            return Err(RemoteError::Api { status, body });
        }
        Ok(Events {
            path,
            body: std::io::BufReader::new(Body {
                inner: r,
                chunked,
                left: 0,
                done: false,
            }),
            line: Vec::new(),
        })
    }
}

impl Events {
    /// The next event; `None` when the daemon ended the stream (it stops).
    pub fn next_event(&mut self) -> Result<Option<crate::events::Event>, RemoteError> {
        self.line.clear();
        let n = std::io::BufRead::read_until(
            &mut (&mut self.body).take(MAX_EVENT_LINE + 1),
            b'\n',
            &mut self.line,
        )
        .map_err(|source| RemoteError::Io {
            path: self.path.clone(),
            source,
        })?;
        let protocol = |detail: String| RemoteError::Protocol {
            path: self.path.clone(),
            detail,
        };
        if n == 0 {
            return Ok(None);
        }
        if !self.line.ends_with(b"\n") {
            return Err(protocol(if n as u64 > MAX_EVENT_LINE {
                format!("an event is longer than {MAX_EVENT_LINE} bytes")
            } else {
                "the event stream ended inside an event".into()
            }));
        }
        serde_json::from_slice(&self.line)
            .map(Some)
            .map_err(|e| protocol(format!("an event is not hostdev's: {e}")))
    }
}

/// A response body: chunked (each chunk's size checked), or to EOF.
#[derive(Debug)]
struct Body {
    inner: std::io::BufReader<UnixStream>,
    chunked: bool,
    /// Bytes left in the current chunk.
    left: u64,
    done: bool,
}

impl Read for Body {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        use std::io::{BufRead, Error, ErrorKind};
        let bad = |what: &str| Error::new(ErrorKind::InvalidData, what.to_string());
        if self.done || out.is_empty() {
            return Ok(0);
        }
        if !self.chunked {
            return self.inner.read(out);
        }
        if self.left == 0 {
            let mut l = Vec::new();
            (&mut self.inner).take(1024).read_until(b'\n', &mut l)?;
            if l.is_empty() {
                return Err(Error::new(ErrorKind::UnexpectedEof, "the stream ended"));
            }
            if !l.ends_with(b"\n") {
                return Err(bad("a chunk size line is cut off or too long"));
            }
            let text = std::str::from_utf8(&l).map_err(|_| bad("bad chunk size"))?;
            let text = text.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(text, 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = size;
        }
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(out.len());
        let got = self.inner.read(&mut out[..want])?;
        if got == 0 {
            return Err(Error::new(ErrorKind::UnexpectedEof, "a chunk is cut off"));
        }
        self.left -= got as u64;
        if self.left == 0 {
            let mut crlf = [0u8; 2];
            self.inner.read_exact(&mut crlf)?;
            if &crlf != b"\r\n" {
                return Err(bad("a chunk does not end in CRLF"));
            }
        }
        Ok(got)
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

    /// A daemon on one end of a socket pair that answers `answer` to
    /// whatever is asked.
    fn events_from(answer: Vec<u8>) -> Result<Events, RemoteError> {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        std::thread::spawn(move || {
            let mut req = [0u8; 256];
            let _ = theirs.read(&mut req);
            let _ = theirs.write_all(&answer);
        });
        Daemon {
            path: "/test".into(),
            stream: ours,
        }
        .events(Some(3))
    }

    fn chunked(parts: &[&[u8]]) -> Vec<u8> {
        let mut a = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for p in parts {
            a.extend(format!("{:x}\r\n", p.len()).as_bytes());
            a.extend(*p);
            a.extend(b"\r\n");
        }
        a
    }

    #[test]
    fn events_are_read_across_chunks_until_the_stream_ends() {
        let one = br#"{"seq":4,"unix_ms":1,"type":"changed","operation":"/v1/dra/prepare","uid":0,"pid":7}"#;
        let two = br#"{"seq":5,"unix_ms":2,"type":"host_file","mode":"report","changes":1,"blocked":0,"failed":0}"#;
        let mut lines = one.to_vec();
        lines.push(b'\n');
        lines.extend(two);
        lines.push(b'\n');
        // Split in odd places: inside the first event and across the newline.
        let (a, rest) = lines.split_at(10);
        let (b, c) = rest.split_at(one.len() - 10 + 1 + 3);
        let mut answer = chunked(&[a, b, c]);
        answer.extend(b"0\r\n\r\n");
        let mut ev = events_from(answer).unwrap();
        let e = ev.next_event().unwrap().unwrap();
        assert_eq!(e.seq, 4);
        assert_eq!(e.what.name(), "changed");
        assert_eq!(ev.next_event().unwrap().unwrap().what.name(), "host_file");
        assert!(ev.next_event().unwrap().is_none());
    }

    #[test]
    fn a_hostile_event_stream_is_an_error_not_a_hang_or_a_panic() {
        // A chunk size that overflows u64.
        let mut a = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        a.extend(b"1ffffffffffffffffff\r\nx");
        let e = events_from(a).unwrap().next_event().unwrap_err();
        assert_eq!(e.code(), "daemon.io", "{e}");
        // A line longer than the bound, never ending.
        let big = vec![b'x'; (MAX_EVENT_LINE + 10) as usize];
        let e = events_from(chunked(&[&big]))
            .unwrap()
            .next_event()
            .unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
        // The stream cut inside an event.
        let e = events_from(chunked(&[b"{\"seq\""]))
            .unwrap()
            .next_event()
            .unwrap_err();
        assert_eq!(e.code(), "daemon.io", "{e}");
        // Not an event.
        let mut a = chunked(&[b"{}\n"]);
        a.extend(b"0\r\n\r\n");
        let e = events_from(a).unwrap().next_event().unwrap_err();
        assert!(e.to_string().contains("not hostdev's"), "{e}");
        // A refusal is the daemon's error.
        let body = br#"{"class":"forbidden","code":"auth.denied","message":"No."}"#;
        let mut a = format!(
            "HTTP/1.1 403 Forbidden\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        a.extend(body);
        let e = events_from(a).unwrap_err();
        assert_eq!(e.code(), "auth.denied", "{e}");
    }
}
