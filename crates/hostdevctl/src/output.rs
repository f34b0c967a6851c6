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

/// The error and its causes joined into one line.
pub fn chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let s = c.to_string();
        // thiserror's transparent variants repeat their source: print it once.
        if parts.last().is_none_or(|l| !l.ends_with(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// A borrowed error and its sources joined into one line.
pub fn chain_dyn(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if parts.last().is_none_or(|l| !l.ends_with(&s)) {
            parts.push(s);
        }
        cur = c.source();
    }
    parts.join(": ")
}

/// Prints the error chain once and picks the exit status.
pub fn fail(prefix: &str, e: anyhow::Error) -> ExitCode {
    let _ = writeln!(io::stderr().lock(), "{prefix}{}", chain(&e));
    ExitCode::FAILURE
}

/// Aligned columns with a header row.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// One row of an autostart report: kind, id, parent, result word, error chain.
pub type OutcomeRow = [String; 5];

/// Turns restore outcomes into report rows and counts the failures.
pub fn outcome_rows<I, P, D>(kind: &str, outcomes: I) -> (Vec<OutcomeRow>, usize)
where
    I: IntoIterator<Item = (P, D, hostdev_core::DeviceOutcome)>,
    P: std::fmt::Display,
    D: std::fmt::Display,
{
    use hostdev_core::DeviceOutcome;
    let mut failed = 0;
    let rows = outcomes
        .into_iter()
        .map(|(parent, id, o)| {
            let (word, err) = match &o {
                DeviceOutcome::Started => ("started", String::new()),
                DeviceOutcome::AlreadyRunning => ("already running", String::new()),
                DeviceOutcome::ParentAbsent => ("parent absent", String::new()),
                DeviceOutcome::Failed(e) => {
                    failed += 1;
                    ("failed", chain_dyn(e))
                }
            };
            [
                kind.to_string(),
                id.to_string(),
                parent.to_string(),
                word.to_string(),
                err,
            ]
        })
        .collect();
    (rows, failed)
}
