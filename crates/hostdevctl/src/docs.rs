//! Man pages and shell completions, generated from the same clap definitions
//! that parse the command line (so they cannot drift from it).
//!
//! Owns: `hostdevctl completions` and `hostdevctl man`. Must not: describe a
//! command by hand.

use crate::native::Format;
use crate::output::{emit, emit_json};
use anyhow::{Context, Result};
use clap::{CommandFactory, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use clap_complete::Shell;

/// Which command line a completion script is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Personality {
    /// hostdevctl itself
    #[default]
    Hostdevctl,
    /// the drop-in mdevctl
    Mdevctl,
    /// the drop-in lsmdev
    Lsmdev,
}

fn command_of(p: Personality) -> clap::Command {
    match p {
        Personality::Hostdevctl => crate::native::command(),
        Personality::Mdevctl => crate::mdevctl::Cmd::command(),
        Personality::Lsmdev => crate::mdevctl::lsmdev_command(),
    }
}

/// Prints the completion script of one command line for one shell.
pub fn completions(shell: Shell, p: Personality, f: Format) -> Result<ExitCode> {
    let mut cmd = command_of(p);
    let name = cmd.get_name().to_string();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut buf);
    let script = String::from_utf8_lossy(&buf);
    match f {
        Format::Json => {
            emit_json(&serde_json::json!({ "shell": shell.to_string(), "script": script }))?
        }
        _ => emit(&script)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn write_page(dir: &Path, cmd: clap::Command, name: &str, section: &str) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.{section}"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.name(name.to_string()))
        .section(section)
        .render(&mut buf)
        .with_context(|| format!("cannot render the man page {name}({section})"))?;
    // Whole pages or none: written beside, then renamed over.
    let tmp = dir.join(format!(".{name}.{section}.tmp"));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(&buf)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Every page of `cmd` and its subcommands (hidden ones left out), named
/// `hostdevctl-mdev-list` as git names its pages.
fn pages(dir: &Path, cmd: &clap::Command, name: &str, out: &mut Vec<PathBuf>) -> Result<()> {
    out.push(write_page(dir, cmd.clone(), name, "1")?);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        let sub_name = format!("{name}-{}", sub.get_name());
        let sub = sub.clone().bin_name(sub_name.replace('-', " "));
        pages(dir, &sub, &sub_name, out)?;
    }
    Ok(())
}

/// Writes every man page into `dir` (made if missing).
pub fn man(dir: &Path, f: Format) -> Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    let mut top = crate::native::command();
    top.build();
    pages(dir, &top, "hostdevctl", &mut written)?;
    written.push(write_page(
        dir,
        crate::mdevctl::Cmd::command(),
        "mdevctl",
        "8",
    )?);
    written.push(write_page(
        dir,
        crate::mdevctl::lsmdev_command(),
        "lsmdev",
        "8",
    )?);
    match f {
        Format::Json => emit_json(&serde_json::json!({ "written": written }))?,
        _ => emit(
            &written
                .iter()
                .map(|p| format!("{}\n", p.display()))
                .collect::<String>(),
        )?,
    }
    Ok(ExitCode::SUCCESS)
}
