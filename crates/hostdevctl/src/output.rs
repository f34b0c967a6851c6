//! Writing results: stdout where a closed pipe is success, and the error chain
//! printed once on stderr.

use std::io::{self, Write};
use std::process::ExitCode;

/// Writes `s` to stdout; a reader that went away (EPIPE) is not an error.
pub fn emit(s: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// Prints a warning line on stderr.
pub fn warn(prefix: &str, msg: &dyn std::fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "{prefix}{msg}");
}

/// The error and its causes joined into one line; a core error gets the
/// hint this front-end adds for its code.
pub fn chain(e: &anyhow::Error) -> String {
    let err: &(dyn std::error::Error + 'static) = e.as_ref();
    let mut out = hostdev_core::chain(err);
    let code = e
        .downcast_ref::<hostdev_core::CoreError>()
        .map(|c| c.code())
        .or_else(|| {
            e.downcast_ref::<hostdev_core::remote::RemoteError>()
                .map(|r| r.code())
        });
    if let Some(h) = code.and_then(hint) {
        out.push_str(h);
    }
    out
}

/// What to do next, in this command line's words, for a core error's code
/// (the core's sentences never name flags).
fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "mdev.ambiguous" => "; give one with --parent",
        "mdev.live_needs_config" => " (give it with --jsonfile)",
        "vgpu.vf_absent" => "; see `hostdevctl vgpu enable`",
        _ => return None,
    })
}

/// Prints the error chain once and picks the exit status.
pub fn fail(prefix: &str, e: anyhow::Error) -> ExitCode {
    let _ = writeln!(io::stderr().lock(), "{prefix}{}", chain(&e));
    ExitCode::FAILURE
}

/// Aligned columns with a header row.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let width = |c: &str| {
        if c.is_ascii() {
            c.len()
        } else {
            c.chars().count()
        }
    };
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(width(c));
        }
    }
    let per_line: usize = w.iter().map(|x| x + 2).sum::<usize>() + 1;
    let mut out = String::with_capacity(per_line * (rows.len() + 1));
    // One line: every cell but the last padded to its column, no trailing blanks.
    let mut line = |cells: &mut dyn Iterator<Item = &str>, n: usize| {
        let start = out.len();
        for (i, c) in cells.enumerate() {
            out.push_str(c);
            if i + 1 < n {
                let pad = w[i] - width(c) + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        let kept = start + out[start..].trim_end().len();
        out.truncate(kept);
        out.push('\n');
    };
    line(&mut header.iter().copied(), header.len());
    for r in rows {
        line(&mut r.iter().map(String::as_str), r.len());
    }
    out
}

/// Items as pretty JSON (one object each) for `-o json`, else as a table.
pub fn render<T>(
    f: crate::native::Format,
    items: &[T],
    header: &[&str],
    json: impl Fn(&T) -> serde_json::Value,
    cells: impl Fn(&T) -> Vec<String>,
) -> String {
    match f {
        crate::native::Format::Json => {
            let v: Vec<serde_json::Value> = items.iter().map(json).collect();
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
        }
        crate::native::Format::Table | crate::native::Format::Libvirt => {
            let rows: Vec<Vec<String>> = items.iter().map(cells).collect();
            table(header, &rows)
        }
    }
}
