//! `hostdevctl plan|apply`: the declarative host file against the host.

use crate::env::{self, Ctx};
use crate::native::Format;
use crate::output::{emit, table};
use anyhow::Result;
use hostdev_core::api::{
    ApplyResult, Change, HostApplyRequest, HostFileDoc, HostImport, HostPlanRequest,
};
use hostdev_core::HostError;
use hostdev_core::{CoreError, Serve};
use hostdev_model::host::HostFile;
use std::path::PathBuf;
use std::process::ExitCode;

/// The file as given, or `/etc/hostdev/host.toml` under the root prefix,
/// read and parsed here (the daemon reads no client paths).
fn read(file: Option<&str>) -> Result<HostFileDoc> {
    let path = match file {
        Some(f) => PathBuf::from(f),
        None => env::root(false).join("etc/hostdev/host.toml"),
    };
    let text = crate::input::read_text(&path, "the host file")?;
    let file = HostFile::parse(&text).map_err(|e| {
        CoreError::from(HostError::BadFile {
            path: path.display().to_string(),
            why: e.to_string(),
        })
    })?;
    Ok(HostFileDoc {
        path: path.display().to_string(),
        file,
    })
}

/// vgpu-device-manager's file, parsed here.
fn read_import(path: &str, config: &str) -> Result<HostImport> {
    let p = PathBuf::from(path);
    let text = crate::input::read_text(&p, "the vgpu-device-manager file")?;
    let spec = hostdev_model::vgpu_dm::parse_spec(&text).map_err(|e| {
        CoreError::from(HostError::BadFile {
            path: path.to_string(),
            why: e.to_string(),
        })
    })?;
    Ok(HostImport {
        path: path.to_string(),
        spec,
        config: config.to_string(),
    })
}

fn row(c: &Change, what: &str) -> Vec<String> {
    vec![
        what.to_string(),
        c.kind.to_string(),
        c.id.clone(),
        c.parent.clone(),
        c.from.clone(),
        c.to.clone(),
        c.why.clone(),
    ]
}

const HEADER: [&str; 7] = ["ACTION", "KIND", "ID", "PARENT", "NOW", "WANTED", "WHY"];

/// `plan`: exit 0 when the host matches, 2 when changes are pending
/// (blocked ones included), 1 when an import could not carry everything
/// over (each loss a warning). With `import` (vgpu-device-manager's file and
/// configuration), that file translated; `show_file` prints the
/// translation instead of the plan.
pub fn plan<D: Serve>(
    ctx: &Ctx<D>,
    file: Option<&str>,
    import: Option<(&str, &str)>,
    show_file: bool,
    f: Format,
) -> Result<ExitCode> {
    let req = match import {
        Some((path, config)) => HostPlanRequest {
            file: None,
            import: Some(read_import(path, config)?),
        },
        None => HostPlanRequest {
            file: Some(read(file)?),
            import: None,
        },
    };
    let p = ctx.call(&req)?;
    // What an import could not carry over: loud on stderr, and exit 1
    // after the plan or file is shown, so a script does not apply it.
    for w in &p.warnings {
        crate::output::warn(w);
    }
    let lost = if p.warnings.is_empty() {
        None
    } else {
        Some(ExitCode::FAILURE)
    };
    if show_file {
        let mut out = String::new();
        for w in &p.warnings {
            out.push_str(&format!("# not carried over: {w}\n"));
        }
        for n in &p.notes {
            out.push_str(&format!("# note: {n}\n"));
        }
        out.push_str(p.file.as_deref().unwrap_or_default());
        emit(&out)?;
        return Ok(lost.unwrap_or(ExitCode::SUCCESS));
    }
    let pending = !p.changes.is_empty() || !p.blocked.is_empty();
    if f == Format::Json {
        emit(&(serde_json::to_string_pretty(&p)? + "\n"))?;
    } else {
        let mut rows: Vec<Vec<String>> = p
            .changes
            .iter()
            .map(|c| row(c, c.action.as_str()))
            .collect();
        rows.extend(
            p.blocked
                .iter()
                .map(|c| row(c, &format!("blocked {}", c.action.as_str()))),
        );
        let mut out = String::new();
        for n in &p.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        if pending {
            out.push_str(&table(&HEADER, &rows));
        }
        out.push_str(&format!(
            "{} to change, {} blocked (in use; apply --force ID), {} as wanted\n",
            p.changes.len(),
            p.blocked.len(),
            p.unchanged
        ));
        emit(&out)?;
    }
    Ok(lost.unwrap_or(ExitCode::from(if pending { 2 } else { 0 })))
}

/// `apply`: exit 0 when every change was made, 1 when one failed, 2 when
/// some were left because they are in use.
pub fn apply<D: Serve>(
    ctx: &Ctx<D>,
    file: Option<&str>,
    force: Vec<String>,
    f: Format,
) -> Result<ExitCode> {
    let req = HostApplyRequest {
        file: Some(read(file)?),
        force,
    };
    let r = crate::output::progress("applying the host file", || ctx.call(&req))?;
    if f == Format::Json {
        emit(&(serde_json::to_string_pretty(&r)? + "\n"))?;
    } else {
        let rows: Vec<Vec<String>> = r
            .outcomes
            .iter()
            .map(|o| {
                let mut x = row(&o.change, o.change.action.as_str());
                x.insert(0, o.result.as_str().to_string());
                if let Some(e) = &o.error {
                    x[7] = e.clone();
                }
                x
            })
            .collect();
        let mut out = String::new();
        for n in &r.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        if !rows.is_empty() {
            let mut h = vec!["RESULT"];
            h.extend(HEADER);
            out.push_str(&table(&h, &rows));
        }
        out.push_str(&format!(
            "{} done, {} failed, {} undone, {} blocked, {} as wanted\n",
            r.count(ApplyResult::Done),
            r.failed(),
            r.undone(),
            r.count(ApplyResult::Blocked),
            r.unchanged
        ));
        emit(&out)?;
    }
    let blocked = r.outcomes.iter().any(|o| o.result == ApplyResult::Blocked);
    if r.failed() + r.undone() > 0 {
        // As every failing command: one error line naming what failed.
        let failed: Vec<String> = r
            .outcomes
            .iter()
            .filter(|o| o.result == ApplyResult::Failed)
            .map(|o| {
                format!(
                    "{} {} {} on {}: {}",
                    o.change.action.as_str(),
                    o.change.kind,
                    o.change.id,
                    o.change.parent,
                    o.error.as_deref().unwrap_or("failed")
                )
            })
            .collect();
        crate::output::error_line(
            "host.apply_failed",
            &format!(
                "{} of the file's changes failed ({} more undone or not tried with them): {}",
                r.failed(),
                r.undone(),
                failed.join("; ")
            ),
        );
    }
    Ok(ExitCode::from(if r.failed() + r.undone() > 0 {
        1
    } else if blocked {
        2
    } else {
        0
    }))
}
