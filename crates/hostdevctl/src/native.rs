//! hostdev's own command line: `hostdevctl mdev …` with mdevctl's verbs and
//! options, human tables by default and `-o json` for machines, plus
//! `autostart` and `udev-rule`.

use crate::env;
use crate::mdevctl::{self, Cmd};
use crate::output::{emit, fail, outcome_rows, table, warn};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use hostdev_model::format::{ListEntry, TypeInfo};
use hostdev_model::ParentName;
use hostdev_store::HostLock;
use serde_json::json;
use std::ffi::OsString;
use std::process::ExitCode;

/// Output format of the native CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// JSON for programs.
    Json,
    /// libvirt XML (where a command has it)
    Libvirt,
}

#[derive(Parser, Debug)]
#[command(
    name = "hostdevctl",
    version,
    about = "Manage the devices a Linux host hands to virtual machines"
)]
struct Cli {
    /// Output format
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        value_enum,
        default_value_t
    )]
    format: Format,
    #[command(subcommand)]
    cmd: Top,
}

#[derive(Subcommand, Debug)]
enum Top {
    /// Mediated devices (mdevctl's verbs and options)
    #[command(subcommand)]
    Mdev(Cmd),
    /// vDPA devices (virtio NICs and disks) over the kernel's vdpa netlink family
    #[command(subcommand)]
    Vdpa(crate::vdpa::VdpaCmd),
    /// NVIDIA vGPUs on SR-IOV virtual functions
    #[command(subcommand)]
    Vgpu(crate::vgpu::VgpuCmd),
    /// Every device hostdev manages, of every kind, in one table
    List,
    /// Start every auto-start definition on every present parent
    Autostart {
        /// Wait up to this many seconds for parents that are not there yet
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Print (or install) the udev rule that starts devices when a parent appears
    UdevRule {
        /// Write it to /etc/udev/rules.d/60-hostdev.rules under the root prefix
        #[arg(long)]
        install: bool,
    },
    /// Run as mdevctl with the given arguments
    #[command(disable_help_flag = true)]
    Mdevctl {
        /// mdevctl's arguments
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

/// Runs the native CLI.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let r = match cli.cmd {
        Top::Mdev(cmd) => mdevctl::run(cmd, Some(cli.format)),
        Top::Autostart { wait } => autostart(cli.format, wait),
        Top::Vgpu(cmd) => crate::vgpu::run(cmd, cli.format),
        Top::Vdpa(cmd) => crate::vdpa::run(cmd, cli.format),
        Top::List => unified_list(cli.format),
        Top::UdevRule { install } => udev_rule(install),
        Top::Mdevctl { args } => {
            let mut argv = vec![OsString::from("mdevctl")];
            argv.extend(args);
            return mdevctl::main(argv, false);
        }
    };
    match r {
        Ok(c) => c,
        Err(e) => fail("hostdevctl: error: ", e),
    }
}

/// `mdev list` in hostdev's formats.
pub fn render_list(entries: &[ListEntry], f: Format) -> String {
    match f {
        Format::Json => {
            let v: Vec<_> = entries
                .iter()
                .map(|e| {
                    json!({
                        "uuid": e.uuid.to_string(),
                        "parent": e.parent.as_str(),
                        "type": e.config.mdev_type.as_str(),
                        "start": e.config.start.as_str(),
                        "active": e.active,
                        "defined": e.defined,
                        "attrs": e.config.attrs.iter().map(|a| json!({"name": a.name, "value": a.value})).collect::<Vec<_>>(),
                    })
                })
                .collect();
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
        }
        Format::Table | Format::Libvirt => {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    let state = match (e.active, e.defined) {
                        (true, true) => "running, defined",
                        (true, false) => "running",
                        (false, _) => "defined",
                    };
                    vec![
                        e.uuid.to_string(),
                        e.parent.to_string(),
                        e.config.mdev_type.to_string(),
                        e.config.start.to_string(),
                        state.to_string(),
                        e.config.attrs.len().to_string(),
                    ]
                })
                .collect();
            table(
                &["UUID", "PARENT", "TYPE", "START", "STATE", "ATTRS"],
                &rows,
            )
        }
    }
}

/// `mdev types` in hostdev's formats.
pub fn render_types(parents: &[(ParentName, Vec<TypeInfo>)], f: Format) -> String {
    match f {
        Format::Json => {
            let v: Vec<_> = parents
                .iter()
                .flat_map(|(p, ts)| {
                    ts.iter().map(move |t| {
                        json!({
                            "parent": p.as_str(),
                            "type": t.type_id.as_str(),
                            "available_instances": t.available_instances,
                            "device_api": t.device_api,
                            "name": t.name.as_deref().map(str::trim),
                            "description": t.description.as_deref().map(str::trim),
                        })
                    })
                })
                .collect();
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
        }
        Format::Table | Format::Libvirt => {
            let rows: Vec<Vec<String>> = parents
                .iter()
                .flat_map(|(p, ts)| {
                    ts.iter().map(move |t| {
                        vec![
                            p.to_string(),
                            t.type_id.to_string(),
                            t.available_instances.to_string(),
                            t.device_api.clone(),
                            t.name.as_deref().unwrap_or("").trim().to_string(),
                        ]
                    })
                })
                .collect();
            table(&["PARENT", "TYPE", "AVAILABLE", "API", "NAME"], &rows)
        }
    }
}

fn autostart(f: Format, wait: u64) -> Result<ExitCode> {
    let host = env::host(false);
    let wait = std::time::Duration::from_secs(wait);
    // mdevs and SR-IOV vGPUs are independent hardware: restore both at once.
    let (report, vgpu) = std::thread::scope(|s| {
        let v = s.spawn(|| crate::vgpu::restore_rows(wait));
        let d = s.spawn(crate::vdpa::restore_rows);
        let m = host.autostart_wait(wait);
        let join = |r: std::thread::Result<Result<(Vec<[String; 5]>, usize)>>| {
            r.unwrap_or_else(|_| Err(anyhow::anyhow!("a restore thread panicked")))
        };
        let (v, d) = (join(v.join()), join(d.join()));
        let both = v.and_then(|(mut rows, n)| {
            d.map(|(more, n2)| {
                rows.extend(more);
                (rows, n + n2)
            })
        });
        (m, both)
    });
    let report = report?;
    let (vgpu_rows, vgpu_failed) = vgpu?;
    for p in &report.problems {
        warn("hostdevctl: warning: ", p);
    }
    let (mut rows, mdev_failed) = outcome_rows("mdev", report.devices);
    rows.extend(vgpu_rows);
    let s = match f {
        Format::Json => {
            let v: Vec<_> = rows
                .iter()
                .map(|[k, id, p, w, e]| {
                    let key = match k.as_str() { "mdev" => "uuid", "vgpu" => "vf", _ => "name" };
                    json!({"kind": k, "parent": p, key: id, "result": w, "error": if e.is_empty() { None } else { Some(e) }})
                })
                .collect();
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
        }
        Format::Table | Format::Libvirt => {
            let rs: Vec<Vec<String>> = rows.iter().map(|r| r.to_vec()).collect();
            table(&["KIND", "ID", "PARENT", "RESULT", "ERROR"], &rs)
        }
    };
    emit(&s)?;
    Ok(if mdev_failed + vgpu_failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `hostdevctl list`: mdevs and vGPU VFs in one table.
fn unified_list(f: Format) -> Result<ExitCode> {
    let host = env::host(false);
    let mut rows: Vec<[String; 6]> = Vec::new();
    let active = host.list(&hostdev_core::ListQuery::default())?;
    let defined = host.list(&hostdev_core::ListQuery {
        defined: true,
        ..Default::default()
    })?;
    for p in active.problems.iter().chain(&defined.problems) {
        warn("hostdevctl: warning: ", p);
    }
    let mut seen = std::collections::HashSet::new();
    for e in active.entries.iter().chain(&defined.entries) {
        if seen.insert((e.uuid, e.parent.clone())) {
            let state = if e.active { "running" } else { "stopped" };
            let start = if e.defined {
                e.config.start.as_str()
            } else {
                "transient"
            };
            rows.push([
                "mdev".into(),
                e.uuid.to_string(),
                e.parent.to_string(),
                e.config.mdev_type.to_string(),
                state.into(),
                start.into(),
            ]);
        }
    }
    rows.extend(crate::vdpa::list_rows()?);
    let (vrows, problems) = crate::vgpu::vgpus().list()?;
    for p in &problems {
        warn("hostdevctl: warning: ", p);
    }
    for r in vrows {
        let ty = match (&r.def, r.current) {
            (Some(d), _) => format!("{} ({})", d.type_id, d.type_name),
            (None, Some(c)) if c != 0 => c.to_string(),
            _ => "-".into(),
        };
        let state = match r.current {
            None => "absent",
            Some(0) => "stopped",
            Some(_) => "running",
        };
        let start = r
            .def
            .as_ref()
            .map(|d| {
                if d.start == hostdev_model::vgpu::Start::Auto {
                    "auto"
                } else {
                    "manual"
                }
            })
            .unwrap_or("-");
        if r.def.is_some() || r.current.is_some_and(|c| c != 0) {
            rows.push([
                "vgpu".into(),
                r.vf.to_string(),
                r.pf.to_string(),
                ty,
                state.into(),
                start.into(),
            ]);
        }
    }
    emit(&match f {
        Format::Json => {
            let v: Vec<_> = rows
                .iter()
                .map(|[k, id, p, t, s, st]| json!({"kind": k, "id": id, "parent": p, "type": t, "state": s, "start": st}))
                .collect();
            serde_json::to_string_pretty(&v)? + "\n"
        }
        Format::Table | Format::Libvirt => {
            let rs: Vec<Vec<String>> = rows.iter().map(|r| r.to_vec()).collect();
            table(&["KIND", "ID", "PARENT", "TYPE", "STATE", "START"], &rs)
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The udev rule, calling this binary at the path it really has.
fn rule_text() -> Result<String> {
    let exe = std::env::current_exe().context("cannot find the path of this binary")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let exe = exe.display();
    Ok(format!(
        "# Installed by hostdevctl: start auto-start mediated devices when their parent appears.\n\
         # Kernels since 5.x announce a parent with a change event carrying MDEV_STATE=registered.\n\
         ACTION==\"change\", ENV{{MDEV_STATE}}==\"registered\", RUN+=\"{exe} mdev start-parent-mdevs %k\"\n\
         # Older kernels only emit add for the parent device.\n\
         ACTION==\"add\", TEST==\"mdev_supported_types\", RUN+=\"{exe} mdev start-parent-mdevs %k\"\n"
    ))
}

fn udev_rule(install: bool) -> Result<ExitCode> {
    let text = rule_text()?;
    if install {
        let root = env::root(false);
        let lock = HostLock::acquire(&HostLock::path_under(&root))?;
        let path = root.join("etc/udev/rules.d/60-hostdev.rules");
        hostdev_store::write_atomic(&lock, &path, text.as_bytes())?;
        emit(&format!("{}\n", path.display()))?;
    } else {
        emit(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}
