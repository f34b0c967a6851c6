//! The kubelet's plugin watcher dials a registration socket with grpc-go's
//! `DialContext(path)`, which sends the socket's path as the HTTP/2
//! `:authority` (kubernetes/kubernetes#112597 fixed that for device
//! plugins and the DRA client, not for plugin registration in 1.37);
//! hyper's `h2`, under tonic, refuses an authority with `/` in it and
//! resets the stream (`PROTOCOL_ERROR`). This module sits between the
//! socket and the server and rewrites, in the client's HEADERS frames, the
//! value of every literal `:authority` field to `localhost` (what grpc-go
//! sends for `unix:` targets). The field keeps its HPACK representation
//! (with incremental indexing stays with it), so both dynamic tables keep
//! the same entries; only the entry's size differs, which matters for
//! eviction alone, and a registration connection (two small calls) never
//! comes near the 4096-byte table.
//!
//! Owns: the byte stream from the kubelet to the registration server.
//! Must not: change anything else — frames it cannot parse, or that are
//! split across CONTINUATION frames, pass through unchanged.

use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::UnixStream;

const PREFACE_LEN: usize = 24;
const HEADERS: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Larger frames are not parsed (the default limit is 16 KiB).
const MAX_PARSED_FRAME: usize = 1 << 20;
/// What `:authority` becomes.
const AUTHORITY: &[u8] = b"localhost";

/// Rewrites a client's HTTP/2 byte stream, fed in pieces.
#[derive(Debug, Default)]
pub struct Rewriter {
    buf: Vec<u8>,
    preface_done: bool,
    passthrough: bool,
}

/// An HPACK integer with an `n`-bit prefix at `b[*i]`.
fn int(b: &[u8], i: &mut usize, n: u32) -> Option<usize> {
    let mask = (1usize << n) - 1;
    let mut v = usize::from(*b.get(*i)?) & mask;
    *i += 1;
    if v < mask {
        return Some(v);
    }
    let mut shift = 0u32;
    loop {
        let c = *b.get(*i)?;
        *i += 1;
        v = v.checked_add(usize::from(c & 0x7f).checked_shl(shift)?)?;
        if c & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
}

/// Skips an HPACK string at `b[*i]`.
fn string(b: &[u8], i: &mut usize) -> Option<()> {
    let len = int(b, i, 7)?;
    let end = i.checked_add(len)?;
    if end > b.len() {
        return None;
    }
    *i = end;
    Some(())
}

/// A header block with every literal `:authority` value replaced.
fn rewrite_block(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let first = b[i];
        let prefix = if first & 0x80 != 0 {
            int(b, &mut i, 7)?;
            out.extend_from_slice(&b[start..i]);
            continue;
        } else if first & 0xc0 == 0x40 {
            6
        } else if first & 0xe0 == 0x20 {
            int(b, &mut i, 5)?;
            out.extend_from_slice(&b[start..i]);
            continue;
        } else {
            4
        };
        let index = int(b, &mut i, prefix)?;
        let mut is_authority = index == 1;
        if index == 0 {
            let name_at = i;
            string(b, &mut i)?;
            // A raw (not Huffman-coded) name.
            is_authority = b[name_at] == 10 && &b[name_at + 1..i] == b":authority";
        }
        out.extend_from_slice(&b[start..i]);
        let value_at = i;
        string(b, &mut i)?;
        if is_authority {
            out.push(u8::try_from(AUTHORITY.len()).ok()?);
            out.extend_from_slice(AUTHORITY);
        } else {
            out.extend_from_slice(&b[value_at..i]);
        }
    }
    Some(out)
}

/// A HEADERS frame's flags and payload, rewritten (padding dropped).
fn rewrite_headers(flags: u8, p: &[u8]) -> Option<(u8, Vec<u8>)> {
    let mut start = 0;
    let mut end = p.len();
    if flags & PADDED != 0 {
        let pad = usize::from(*p.first()?);
        start = 1;
        end = end.checked_sub(pad)?;
    }
    let mut out = Vec::new();
    if flags & PRIORITY != 0 {
        out.extend_from_slice(p.get(start..start + 5)?);
        start += 5;
    }
    if start > end {
        return None;
    }
    out.extend(rewrite_block(&p[start..end])?);
    Some((flags & !PADDED, out))
}

impl Rewriter {
    /// A rewriter at the start of a connection.
    pub fn new() -> Rewriter {
        Rewriter::default()
    }

    /// Takes bytes from the client; returns what to pass on (whole frames,
    /// rewritten; a partial frame is held until the rest comes).
    pub fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        if self.passthrough {
            return data.to_vec();
        }
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        if !self.preface_done {
            if self.buf.len() < PREFACE_LEN {
                return out;
            }
            out.extend(self.buf.drain(..PREFACE_LEN));
            self.preface_done = true;
        }
        loop {
            if self.buf.len() < 9 {
                return out;
            }
            let len = usize::from(self.buf[0]) << 16
                | usize::from(self.buf[1]) << 8
                | usize::from(self.buf[2]);
            if len > MAX_PARSED_FRAME {
                self.passthrough = true;
                out.append(&mut self.buf);
                return out;
            }
            if self.buf.len() < 9 + len {
                return out;
            }
            let frame: Vec<u8> = self.buf.drain(..9 + len).collect();
            let (kind, flags) = (frame[3], frame[4]);
            let rewritten = (kind == HEADERS && flags & END_HEADERS != 0)
                .then(|| rewrite_headers(flags, &frame[9..]))
                .flatten();
            match rewritten {
                Some((flags, payload)) if payload.len() < 1 << 24 => {
                    let n = payload.len();
                    out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flags]);
                    out.extend_from_slice(&frame[5..9]);
                    out.extend(payload);
                }
                _ => out.extend(frame),
            }
        }
    }
}

/// Relays one connection: the client's bytes through a [`Rewriter`] into
/// `server`, the server's back unchanged, until either side closes.
pub async fn relay(client: UnixStream, server: DuplexStream) -> io::Result<()> {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = tokio::io::split(server);
    let up = async move {
        let mut rw = Rewriter::new();
        let mut b = vec![0u8; 16 * 1024];
        loop {
            let n = cr.read(&mut b).await?;
            if n == 0 {
                sw.shutdown().await?;
                return Ok::<_, io::Error>(());
            }
            let out = rw.feed(&b[..n]);
            sw.write_all(&out).await?;
        }
    };
    let down = async move {
        tokio::io::copy(&mut sr, &mut cw).await?;
        cw.shutdown().await
    };
    tokio::select! {
        r = up => r,
        r = down => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let n = payload.len();
        let mut f = vec![
            (n >> 16) as u8,
            (n >> 8) as u8,
            n as u8,
            kind,
            flags,
            0,
            0,
            0,
            1,
        ];
        f.extend_from_slice(payload);
        f
    }

    /// A block: `:method POST` (static 3), `:authority` with incremental
    /// indexing (name index 1) and a raw path value, `:path` literal
    /// without indexing (name index 4), then a fully indexed dynamic entry.
    fn block(authority: &[u8]) -> Vec<u8> {
        let mut b = vec![0x83, 0x41, authority.len() as u8];
        b.extend_from_slice(authority);
        b.extend_from_slice(&[0x04, 0x05]);
        b.extend_from_slice(b"/x/Gi");
        b.push(0xbe);
        b
    }

    #[test]
    fn the_socket_path_authority_becomes_localhost_and_the_rest_stays() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let settings = frame(0x4, 0, &[]);
        let headers = frame(
            HEADERS,
            END_HEADERS,
            &block(b"/var/lib/kubelet/plugins_registry/x-reg.sock"),
        );
        let mut stream = preface.to_vec();
        stream.extend(&settings);
        stream.extend(&headers);
        // Fed in 5-byte pieces: frames are only passed on whole.
        let mut rw = Rewriter::new();
        let mut out = Vec::new();
        for piece in stream.chunks(5) {
            out.extend(rw.feed(piece));
        }
        let mut want = preface.to_vec();
        want.extend(&settings);
        want.extend(frame(HEADERS, END_HEADERS, &block(b"localhost")));
        assert_eq!(out, want);
    }

    #[test]
    fn padding_is_dropped_and_priority_kept() {
        let mut p = vec![3u8];
        p.extend_from_slice(&[0, 0, 0, 3, 16]);
        p.extend(block(b"/s"));
        p.extend_from_slice(&[0, 0, 0]);
        let (flags, payload) = rewrite_headers(END_HEADERS | PADDED | PRIORITY, &p).unwrap();
        assert_eq!(flags, END_HEADERS | PRIORITY);
        let mut want = vec![0, 0, 0, 3, 16];
        want.extend(block(b"localhost"));
        assert_eq!(payload, want);
    }

    #[test]
    fn what_cannot_be_parsed_passes_unchanged() {
        // A string longer than the block.
        assert_eq!(
            rewrite_block(&[0x41, 0x7f, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            None
        );
        let mut rw = Rewriter::new();
        let mut stream = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        let bad = frame(HEADERS, END_HEADERS, &[0x41, 0x20, b'x']);
        stream.extend(&bad);
        assert_eq!(rw.feed(&stream), stream);
        // A frame header claiming 16 MiB switches to passing bytes through.
        let huge = [0xff, 0xff, 0xff, HEADERS, END_HEADERS, 0, 0, 0, 1];
        assert_eq!(rw.feed(&huge), huge.to_vec());
        assert_eq!(rw.feed(b"abc"), b"abc".to_vec());
    }
}
