//! Writing results: stdout where a closed pipe is success, warnings and the
//! error chain printed once on stderr, and the same as JSON under `-o json`.
//!
//! Owns: the personality's prefixes (hostdevctl's or mdevctl's), the JSON
//! switch for stderr, tables. Must not: decide what a command prints.

use hostdev_api::client::RemoteError;
use hostdev_api::{ErrorBody, ErrorClass};
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

static MDEVCTL: AtomicBool = AtomicBool::new(false);
static JSON: AtomicBool = AtomicBool::new(false);

/// Chooses how warnings and errors look: mdevctl's (`Warning: `, `Error: `)
/// for the drop-in, else hostdevctl's; `json` writes them as JSON lines.
pub fn set_style(mdevctl: bool, json: bool) {
    MDEVCTL.store(mdevctl, Ordering::Relaxed);
    JSON.store(json, Ordering::Relaxed);
}

/// Whether warnings and errors go to stderr as JSON.
pub fn json_errors() -> bool {
    JSON.load(Ordering::Relaxed)
}

thread_local! {
    /// Where this thread's output goes instead of stdout and stderr, while
    /// [`capture`] runs a command in process.
    static CAPTURED: std::cell::RefCell<Option<(String, String)>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` (a command run in process, e.g. by a test over fakes) with its
/// stdout and stderr kept as strings: `(result, stdout, stderr)`.
pub fn capture<R>(f: impl FnOnce() -> R) -> (R, String, String) {
    CAPTURED.with(|c| *c.borrow_mut() = Some(Default::default()));
    let r = f();
    let (out, err) = CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (r, out, err)
}

/// Appends to the captured stdout (`err`: stderr) if capturing.
fn captured(s: &str, err: bool) -> bool {
    CAPTURED.with(|c| match c.borrow_mut().as_mut() {
        Some((o, e)) => {
            if err { e } else { o }.push_str(s);
            true
        }
        None => false,
    })
}

/// Writes one line on stderr (or into [`capture`]'s).
fn stderr_line(line: &str) {
    if !captured(&format!("{line}\n"), true) {
        let _ = writeln!(io::stderr().lock(), "{line}");
    }
}

/// Writes `s` to stdout; a reader that went away (EPIPE) is not an error.
pub fn emit(s: &str) -> io::Result<()> {
    if captured(s, false) {
        return Ok(());
    }
    let mut out = io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// Writes a value as pretty JSON on stdout.
pub fn emit_json<T: serde::Serialize + ?Sized>(v: &T) -> anyhow::Result<()> {
    emit(&(serde_json::to_string_pretty(v)? + "\n"))?;
    Ok(())
}

/// Prints one warning on stderr, in the one style of this personality.
pub fn warn(msg: &dyn std::fmt::Display) {
    let line = if json_errors() {
        serde_json::json!({"warning": {"message": msg.to_string()}}).to_string()
    } else if MDEVCTL.load(Ordering::Relaxed) {
        format!("Warning: {msg}")
    } else {
        format!("hostdevctl: warning: {msg}")
    };
    stderr_line(&line);
}

/// The error as the API would answer it: the core's (or the daemon's)
/// class, code and target when the chain carries one, else `cli.failed`
/// (a step of this command line's own, such as reading a named file).
/// The message is [`chain`]'s.
pub fn body(e: &anyhow::Error) -> ErrorBody {
    let found = e.chain().find_map(|c| {
        c.downcast_ref::<hostdev_core::CoreError>()
            .map(|c| c.body())
            .or_else(|| c.downcast_ref::<RemoteError>().map(RemoteError::body))
    });
    let mut b = found.unwrap_or_else(|| ErrorBody::new(ErrorClass::Failed, "cli.failed", ""));
    b.message = chain_with(e, &b.code);
    b
}

/// The stable code of an error (see [`body`]).
pub fn code(e: &anyhow::Error) -> String {
    body(e).code
}

/// The error and its causes joined into one line; a core error gets the
/// hint this front-end adds for its code.
pub fn chain(e: &anyhow::Error) -> String {
    body(e).message
}

fn chain_with(e: &anyhow::Error, code: &str) -> String {
    let err: &(dyn std::error::Error + 'static) = e.as_ref();
    let mut out = hostdev_core::chain(err);
    if let Some(h) = hint(code) {
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
        "host.no_sysfs" => {
            "; HOSTDEV_ROOT points hostdev at another root (a simulated lab: `hostdev-sim run --root DIR --profile demo`)"
        }
        _ => return None,
    })
}

/// Prints one error of this command line's own (a usage error) on stderr.
pub fn error_line(code: &str, message: &str) {
    let class = if code == "cli.usage" || code == "cli.no_libvirt_form" {
        ErrorClass::Invalid
    } else {
        ErrorClass::Failed
    };
    error_body(&ErrorBody::new(class, code, message));
}

/// Prints one error on stderr: `{"error": {"class", "code", "message",
/// "target"}}` (the API's error body) under `-o json`, else the
/// personality's prefix and the sentence.
pub fn error_body(b: &ErrorBody) {
    let line = if json_errors() {
        serde_json::json!({ "error": b }).to_string()
    } else if MDEVCTL.load(Ordering::Relaxed) {
        format!("Error: {}", b.message)
    } else {
        format!("hostdevctl: error: {}", b.message)
    };
    stderr_line(&line);
}

/// Prints the error chain once and picks the exit status.
pub fn fail(e: anyhow::Error) -> ExitCode {
    error_body(&body(&e));
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

/// The start policy as every listing names it: `auto`, `manual`, or
/// `transient` for a device nobody defined.
pub fn start_label(s: Option<hostdev_core::api::StartPolicy>) -> &'static str {
    s.map(|s| s.as_str()).unwrap_or("transient")
}

/// Colour for a terminal: on when stdout is one and `NO_COLOR` is unset or
/// empty (<https://no-color.org>), off when piped.
pub struct Paint {
    on: bool,
}

impl Paint {
    /// For what goes to stdout.
    pub fn stdout() -> Paint {
        use std::io::IsTerminal;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Paint {
            on: io::stdout().is_terminal() && !no_color,
        }
    }

    fn sgr(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// Headings and names.
    pub fn bold(&self, s: &str) -> String {
        self.sgr("1", s)
    }

    /// What runs.
    pub fn green(&self, s: &str) -> String {
        self.sgr("32", s)
    }

    /// What is defined but not there.
    pub fn yellow(&self, s: &str) -> String {
        self.sgr("33", s)
    }

    /// Asides.
    pub fn dim(&self, s: &str) -> String {
        self.sgr("2", s)
    }
}

/// Runs `work`, showing on a terminal (stderr) what it waits for and for how
/// long; nothing is drawn when stderr is not a terminal or the work ends
/// within a moment.
pub fn progress<T>(label: &str, work: impl FnOnce() -> T) -> T {
    use std::io::IsTerminal;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};
    if !io::stderr().is_terminal() || std::env::var_os("HOSTDEV_NO_PROGRESS").is_some() {
        return work();
    }
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let label = label.to_string();
    let drawer = std::thread::spawn(move || {
        let started = Instant::now();
        const SPIN: [char; 4] = ['|', '/', '-', '\\'];
        let mut drawn = false;
        let mut i = 0usize;
        while let Err(mpsc::RecvTimeoutError::Timeout) =
            done_rx.recv_timeout(Duration::from_millis(100))
        {
            let t = started.elapsed();
            if t < Duration::from_millis(300) {
                continue;
            }
            let _ = write!(
                io::stderr().lock(),
                "\r\x1b[2K{} {label} ({:.1} s)",
                SPIN[i % SPIN.len()],
                t.as_secs_f64()
            );
            drawn = true;
            i += 1;
        }
        if drawn {
            let _ = write!(io::stderr().lock(), "\r\x1b[2K");
        }
    });
    let out = work();
    drop(done_tx);
    let _ = drawer.join();
    out
}

/// What a command that changes something did, as one JSON object under
/// `-o json` (`{"kind", "id", "action", …}`); nothing in a table (these
/// verbs are silent on success, as mdevctl's are).
pub fn done(f: crate::native::Format, v: serde_json::Value) -> anyhow::Result<()> {
    if f == crate::native::Format::Json {
        emit_json(&v)?;
    }
    Ok(())
}

/// A type as every JSON listing gives it: `{"id", "name"}`.
pub fn type_json(id: impl serde::Serialize, name: Option<&str>) -> serde_json::Value {
    serde_json::json!({"id": id, "name": name.map(str::trim)})
}
