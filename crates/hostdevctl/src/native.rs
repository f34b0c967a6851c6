//! hostdev's own command line: `hostdevctl mdev …` with mdevctl's verbs and
//! options, human tables by default and `-o json` for machines, plus
//! `autostart` and `udev-rule`.

use crate::env::{self, Ctx};
use crate::mdevctl::{self, Cmd};
use crate::output::{emit, emit_json, fail, render, start_label, type_json, warn};
use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use hostdev_core::api::{DeviceRow, Inventory, InventoryQuery, RestoreReport, RestoreRequest};
use hostdev_core::Serve;
use hostdev_model::format::{ListEntry, TypeInfo};
use hostdev_model::ParentName;
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
    version = hostdev_version::VERSION,
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
    /// Pools of devices handed to consumers (VMs)
    #[command(subcommand)]
    Pool(crate::pool::PoolCmd),
    /// libvirt's qemu hook: domains that name pool-bound UUIDs get devices at start
    #[command(subcommand)]
    LibvirtHook(crate::pool::HookCmd),
    /// What a device can do, asked as QEMU asks it (VFIO): display, migration, regions, irqs
    #[command(group(clap::ArgGroup::new("what").required(true).args(["device", "parent"])))]
    Probe {
        /// An mdev's UUID, or the PCI address of a function bound to a VFIO driver
        device: Option<String>,
        /// Probe a type instead: make a transient device on this parent, probe it, remove it
        #[arg(long, requires = "mdev_type")]
        parent: Option<String>,
        /// The type to probe (with --parent)
        #[arg(long = "type", requires = "parent")]
        mdev_type: Option<String>,
    },
    /// Migration: export a device's spec on the source, check a device against it on the destination
    #[command(subcommand)]
    Migrate(crate::migrate::MigrateCmd),
    /// Compare the host file (/etc/hostdev/host.toml) with the host: what apply would create, change, remove, and what is blocked because it is in use; exit 0 nothing to do, 2 changes pending
    Plan {
        /// The host file (default: /etc/hostdev/host.toml under the root prefix)
        #[arg(long, conflicts_with = "from_vgpu_device_manager")]
        file: Option<String>,
        /// Plan NVIDIA vgpu-device-manager's configuration FILE instead (with --config)
        #[arg(long, value_name = "FILE", requires = "config")]
        from_vgpu_device_manager: Option<String>,
        /// The configuration to take from that file (as `nvidia-vgpu-dm -c`)
        #[arg(long, short = 'c', requires = "from_vgpu_device_manager")]
        config: Option<String>,
        /// Print the host file the import translates to (save it as /etc/hostdev/host.toml), not the plan
        #[arg(long, requires = "from_vgpu_device_manager")]
        show_file: bool,
    },
    /// Make the host match the host file; devices in use are reported and left alone; exit 0 done, 1 a change failed, 2 some were blocked
    Apply {
        /// The host file (default: /etc/hostdev/host.toml under the root prefix)
        #[arg(long)]
        file: Option<String>,
        /// Change this device (UUID, VF address, vDPA name) even though it is in use (repeatable)
        #[arg(long)]
        force: Vec<String>,
    },
    /// Every device hostdev manages, of every kind, in one table
    List,
    /// Start every auto-start definition on every present parent
    Autostart {
        /// Wait up to this many seconds for parents that are not there yet
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// The host's topology: SR-IOV PFs → VFs → vGPU types, mdev parents → types (capacity) → devices, vDPA management devices → devices
    Tree,
    /// Print (or install) the udev rule that starts devices when a parent appears
    UdevRule {
        /// Write it to /etc/udev/rules.d/60-hostdev.rules under the root prefix
        #[arg(long)]
        install: bool,
    },
    /// Print a shell completion script (bash: save as /usr/share/bash-completion/completions/hostdevctl)
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: crate::docs::Shell,
        /// The command to complete: hostdevctl, or the drop-in mdevctl / lsmdev
        #[arg(long, value_enum, default_value_t)]
        command: crate::docs::Personality,
    },
    /// Write man pages (hostdevctl.1, one per subcommand, mdevctl.8, lsmdev.8) into DIR
    Man {
        /// Where to write them
        dir: std::path::PathBuf,
    },
    /// Run as mdevctl with the given arguments
    #[command(disable_help_flag = true)]
    Mdevctl {
        /// mdevctl's arguments
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

/// The commands that have a libvirt form (`-o libvirt`).
const LIBVIRT_FORMS: &[&str] = &[
    "pool allocate",
    "migrate prepare",
    "probe",
    "vdpa show",
    "vgpu libvirt",
];

/// The native command line as clap sees it (for parsing, man pages and
/// completions): the mdevctl options that mean something else under
/// hostdevctl say so.
pub fn command() -> clap::Command {
    const COMPAT: &str = "Same as -o json (accepted for compatibility with mdevctl)";
    Cli::command().mut_subcommand("mdev", |m| {
        m.mut_subcommand("list", |l| {
            l.mut_arg("dumpjson", |a| a.help(COMPAT))
                .mut_arg("verbose", |a| {
                    a.help("Show every attribute (name=value) instead of how many there are")
                })
        })
        .mut_subcommand("types", |t| t.mut_arg("dumpjson", |a| a.help(COMPAT)))
    })
}

/// Whether the arguments ask for `-o json` (looked at before parsing, so
/// that a usage error is JSON too).
fn wants_json(args: &[OsString]) -> bool {
    let args: Vec<&str> = args.iter().skip(1).filter_map(|a| a.to_str()).collect();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        match *a {
            "--" | "mdevctl" => return false,
            "-o" | "--output" if it.peek() == Some(&&"json") => return true,
            "-ojson" | "-o=json" | "--output=json" => return true,
            _ => {}
        }
    }
    false
}

/// The subcommand names of a parse, joined: `pool allocate`.
fn command_path(m: &clap::ArgMatches) -> String {
    let mut path = Vec::new();
    let mut m = m;
    while let Some((name, sub)) = m.subcommand() {
        path.push(name.to_string());
        m = sub;
    }
    path.join(" ")
}

/// Runs the native CLI on the real host (through its daemon if one answers).
pub fn main(args: Vec<OsString>) -> ExitCode {
    run_with(&Ctx::real(false), args)
}

/// Runs the native CLI with its operations going where `ctx` sends them.
pub fn run_with<D: Serve>(ctx: &Ctx<D>, args: Vec<OsString>) -> ExitCode {
    crate::output::set_style(false, wants_json(&args));
    let parsed = command()
        .try_get_matches_from(&args)
        .and_then(|m| Cli::from_arg_matches(&m).map(|c| (c, command_path(&m))));
    let (cli, path) = match parsed {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    if cli.format == Format::Libvirt && !LIBVIRT_FORMS.contains(&path.as_str()) {
        crate::output::error_line(
            "cli.no_libvirt_form",
            &format!(
                "`hostdevctl {path}` has no libvirt form; -o libvirt applies to {}",
                LIBVIRT_FORMS
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        return ExitCode::from(2);
    }
    let first = path.split(' ').next().unwrap_or_default();
    // A daemon serves its own root; only a CLI acting directly checks this one.
    if !matches!(
        first,
        "completions" | "man" | "udev-rule" | "libvirt-hook" | "mdevctl"
    ) && !ctx.daemon_answers()
    {
        if let Some(root) = &ctx.root {
            match hostdev_core::check_root(root) {
                Err(e) => return fail(e.into()),
                Ok(Some(note)) if matches!(path.as_str(), "mdev types" | "mdev list" | "tree") => {
                    warn(&note)
                }
                Ok(_) => {}
            }
        }
    }
    let r = match cli.cmd {
        Top::Mdev(cmd) => mdevctl::run(ctx, cmd, Some(cli.format)),
        Top::Autostart { wait } => autostart(ctx, cli.format, wait),
        Top::Vgpu(cmd) => crate::vgpu::run(ctx, cmd, cli.format),
        Top::Vdpa(cmd) => crate::vdpa::run(ctx, cmd, cli.format),
        Top::Pool(cmd) => crate::pool::run(ctx, cmd, cli.format),
        Top::LibvirtHook(cmd) => crate::pool::hook(ctx, cmd, cli.format),
        Top::Probe {
            device,
            parent,
            mdev_type,
        } => crate::probe::run(ctx, device.as_deref(), parent.zip(mdev_type), cli.format),
        Top::Migrate(cmd) => crate::migrate::run(ctx, cmd, cli.format),
        Top::Plan {
            file,
            from_vgpu_device_manager,
            config,
            show_file,
        } => crate::host::plan(
            ctx,
            file.as_deref(),
            from_vgpu_device_manager.as_deref().zip(config.as_deref()),
            show_file,
            cli.format,
        ),
        Top::Apply { file, force } => crate::host::apply(ctx, file.as_deref(), force, cli.format),
        Top::List => unified_list(ctx, cli.format),
        Top::Tree => crate::tree::run(ctx, cli.format),
        Top::UdevRule { install } => udev_rule(install, cli.format),
        Top::Completions { shell, command } => crate::docs::completions(shell, command, cli.format),
        Top::Man { dir } => crate::docs::man(&dir, cli.format),
        Top::Mdevctl { args } => {
            if cli.format != Format::Table {
                crate::output::error_line(
                    "cli.usage",
                    "-o does not apply to `hostdevctl mdevctl`, which prints mdevctl's own formats (see its --dumpjson)",
                );
                return ExitCode::from(2);
            }
            let mut argv = vec![OsString::from("mdevctl")];
            argv.extend(args);
            return mdevctl::main(argv, false);
        }
    };
    match r {
        Ok(c) => c,
        Err(e) => fail(e),
    }
}

/// A parse that failed: help and version print as usual; a usage error is a
/// sentence (JSON under `-o json`) and exit status 2.
fn usage(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if !crate::output::json_errors()
        || matches!(
            e.kind(),
            ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        )
    {
        e.exit()
    }
    crate::output::error_line("cli.usage", &usage_sentence(&e.render().to_string()));
    ExitCode::from(2)
}

/// clap's rendered error as one line: the sentence before the usage and
/// help paragraphs it appends, with the control characters of a quoted
/// value escaped (a value with a newline once cut the message at it).
fn usage_sentence(text: &str) -> String {
    let end = ["\n\nUsage:", "\n\nFor more information", "\n\n  tip:"]
        .iter()
        .filter_map(|m| text.find(m))
        .min()
        .unwrap_or(text.len());
    // clap lists missing arguments on indented lines of their own.
    let s = text[..end]
        .trim_start_matches("error: ")
        .trim_end()
        .replace(":\n  ", ": ")
        .replace("\n  ", ", ");
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `mdev list` in hostdev's formats; `verbose` shows every attribute;
/// `names` gives type names by (parent, type) for JSON.
pub fn render_list(
    entries: &[ListEntry],
    f: Format,
    verbose: bool,
    names: &std::collections::HashMap<(String, String), String>,
) -> String {
    render(
        f,
        entries,
        &["UUID", "PARENT", "TYPE", "START", "STATE", "ATTRS"],
        |e| {
            let ty = e.config.mdev_type.as_str();
            let name = names.get(&(e.parent.to_string(), ty.to_string()));
            json!({
                "id": e.uuid.to_string(),
                "kind": "mdev",
                "parent": e.parent.as_str(),
                "type": type_json(ty, name.map(String::as_str)),
                "start": e.config.start.as_str(),
                "state": if e.active { "running" } else { "stopped" },
                "active": e.active,
                "defined": e.defined,
                "attrs": e.config.attrs.iter().map(|a| json!({"name": a.name, "value": a.value})).collect::<Vec<_>>(),
            })
        },
        |e| {
            let state = match (e.active, e.defined) {
                (true, true) => "running, defined",
                (true, false) => "running",
                (false, _) => "defined",
            };
            let start = if e.defined {
                e.config.start.as_str()
            } else {
                start_label(None)
            };
            let attrs = if verbose {
                e.config
                    .attrs
                    .iter()
                    .map(|a| format!("{}={}", a.name, a.value))
                    .collect::<Vec<_>>()
                    .join(",")
            } else {
                e.config.attrs.len().to_string()
            };
            vec![
                e.uuid.to_string(),
                e.parent.to_string(),
                e.config.mdev_type.to_string(),
                start.to_string(),
                state.to_string(),
                attrs,
            ]
        },
    )
}

/// `mdev types` in hostdev's formats: one row per (parent, type).
pub fn render_types(parents: &[(ParentName, Vec<TypeInfo>)], f: Format) -> String {
    let rows: Vec<(&ParentName, &TypeInfo)> = parents
        .iter()
        .flat_map(|(p, ts)| ts.iter().map(move |t| (p, t)))
        .collect();
    render(
        f,
        &rows,
        &["PARENT", "TYPE", "AVAILABLE", "API", "NAME"],
        |(p, t)| {
            json!({
                "parent": p.as_str(),
                "type": type_json(t.type_id.as_str(), t.name.as_deref()),
                "available_instances": t.available_instances,
                "device_api": t.device_api,
                "description": t.description.as_deref().map(str::trim),
            })
        },
        |(p, t)| {
            vec![
                p.to_string(),
                t.type_id.to_string(),
                t.available_instances.to_string(),
                t.device_api.clone(),
                t.name.as_deref().unwrap_or("").trim().to_string(),
            ]
        },
    )
}

fn autostart<D: Serve>(ctx: &Ctx<D>, f: Format, wait: u64) -> Result<ExitCode> {
    let label = if wait > 0 {
        format!("restoring auto-start devices (waiting up to {wait} s for parents)")
    } else {
        "restoring auto-start devices".to_string()
    };
    let report = crate::output::progress(&label, || ctx.call(&RestoreRequest { wait_secs: wait }))?;
    for u in &report.unavailable {
        warn(&format!(
            "{} devices were not restored: {}",
            u.kind, u.reason
        ));
    }
    emit(&render_restore(&report, f))?;
    Ok(if report.failed() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A restore report as a table or JSON (one object per row).
fn render_restore(report: &RestoreReport, f: Format) -> String {
    render(
        f,
        &report.rows,
        &["KIND", "ID", "PARENT", "RESULT", "ERROR"],
        |r| {
            json!({
                "kind": r.kind,
                "parent": r.parent,
                "id": r.id,
                "result": r.outcome.as_str(),
                "error": r.error.as_ref().map(|e| &e.message),
                "code": r.error.as_ref().map(|e| &e.code),
            })
        },
        |r| {
            vec![
                r.kind.to_string(),
                r.id.clone(),
                r.parent.clone(),
                r.outcome.as_str().to_string(),
                r.error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_default(),
            ]
        },
    )
}

/// `hostdevctl list`: every kind in one table.
fn unified_list<D: Serve>(ctx: &Ctx<D>, f: Format) -> Result<ExitCode> {
    let inv = ctx.call(&InventoryQuery {})?;
    for p in &inv.problems {
        warn(p);
    }
    for u in &inv.unavailable {
        warn(u);
    }
    emit(&render_inventory(&inv, f))?;
    Ok(ExitCode::SUCCESS)
}

fn render_inventory(inv: &Inventory, f: Format) -> String {
    let start = |r: &DeviceRow| start_label(r.start);
    render(
        f,
        &inv.devices,
        &["KIND", "ID", "PARENT", "TYPE", "STATE", "START"],
        |r| {
            json!({
                "kind": r.kind, "id": r.id, "parent": r.parent, "type": row_type(r),
                "state": r.state.as_str(), "start": start(r),
            })
        },
        |r| {
            vec![
                r.kind.to_string(),
                r.id.clone(),
                r.parent.clone(),
                r.type_
                    .as_ref()
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "-".into()),
                r.state.as_str().to_string(),
                start(r).to_string(),
            ]
        },
    )
}

/// A row's type as `{"id", "name"}` (`"-"` when it has none).
fn row_type(r: &DeviceRow) -> serde_json::Value {
    match &r.type_ {
        Some(t) => type_json(&t.id, t.name.as_deref()),
        None => type_json("-", None),
    }
}

fn udev_rule(install: bool, f: Format) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the path of this binary")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    if install {
        let path = hostdev_core::udev::install(&env::root(false), &exe)?;
        match f {
            Format::Json => emit_json(&json!({"installed": path}))?,
            _ => emit(&format!("{}\n", path.display()))?,
        }
    } else {
        let rule = hostdev_core::udev::rule_text(&exe)?;
        match f {
            Format::Json => emit_json(&json!({"rule": rule}))?,
            _ => emit(&rule)?,
        }
    }
    Ok(ExitCode::SUCCESS)
}
