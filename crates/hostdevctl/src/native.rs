//! hostdev's own command line: `hostdevctl mdev …` with mdevctl's verbs and
//! options, human tables by default and `-o json` for machines, plus
//! `autostart` and `udev-rule`.

use crate::env;
use crate::mdevctl::{self, Cmd};
use crate::output::{emit, fail, render, warn};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use hostdev_core::api::{
    DeviceRow, Inventory, InventoryQuery, Kind, RestoreReport, RestoreRequest,
};
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
        Top::Pool(cmd) => crate::pool::run(cmd, cli.format),
        Top::LibvirtHook(cmd) => crate::pool::hook(cmd),
        Top::Probe {
            device,
            parent,
            mdev_type,
        } => crate::probe::run(device.as_deref(), parent.zip(mdev_type), cli.format),
        Top::Migrate(cmd) => crate::migrate::run(cmd, cli.format),
        Top::Plan {
            file,
            from_vgpu_device_manager,
            config,
            show_file,
        } => crate::host::plan(
            file.as_deref(),
            from_vgpu_device_manager.as_deref().zip(config.as_deref()),
            show_file,
            cli.format,
        ),
        Top::Apply { file, force } => crate::host::apply(file.as_deref(), force, cli.format),
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
    render(
        f,
        entries,
        &["UUID", "PARENT", "TYPE", "START", "STATE", "ATTRS"],
        |e| {
            json!({
                "uuid": e.uuid.to_string(),
                "parent": e.parent.as_str(),
                "type": e.config.mdev_type.as_str(),
                "start": e.config.start.as_str(),
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
            vec![
                e.uuid.to_string(),
                e.parent.to_string(),
                e.config.mdev_type.to_string(),
                e.config.start.to_string(),
                state.to_string(),
                e.config.attrs.len().to_string(),
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
                "type": t.type_id.as_str(),
                "available_instances": t.available_instances,
                "device_api": t.device_api,
                "name": t.name.as_deref().map(str::trim),
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

fn autostart(f: Format, wait: u64) -> Result<ExitCode> {
    let report = env::call(env::backend(false), &RestoreRequest { wait_secs: wait })?;
    for u in &report.unavailable {
        warn(
            "hostdevctl: warning: ",
            &format!("{} devices were not restored: {}", u.kind, u.reason),
        );
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
            let key = match r.kind {
                Kind::Mdev => "uuid",
                Kind::Vgpu => "vf",
                Kind::Vdpa => "name",
            };
            json!({
                "kind": r.kind,
                "parent": r.parent,
                key: r.id,
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
fn unified_list(f: Format) -> Result<ExitCode> {
    let inv = env::call(env::backend(false), &InventoryQuery {})?;
    for p in &inv.problems {
        warn("hostdevctl: warning: ", p);
    }
    for u in &inv.unavailable {
        warn("hostdevctl: warning: ", u);
    }
    emit(&render_inventory(&inv, f))?;
    Ok(ExitCode::SUCCESS)
}

fn render_inventory(inv: &Inventory, f: Format) -> String {
    let start = |r: &DeviceRow| match r.start {
        Some(s) => s.as_str(),
        None if r.kind == Kind::Vgpu => "-",
        None => "transient",
    };
    render(
        f,
        &inv.devices,
        &["KIND", "ID", "PARENT", "TYPE", "STATE", "START"],
        |r| {
            json!({
                "kind": r.kind, "id": r.id, "parent": r.parent, "type": r.type_,
                "state": r.state.as_str(), "start": start(r),
            })
        },
        |r| {
            vec![
                r.kind.to_string(),
                r.id.clone(),
                r.parent.clone(),
                r.type_.clone(),
                r.state.as_str().to_string(),
                start(r).to_string(),
            ]
        },
    )
}

fn udev_rule(install: bool) -> Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the path of this binary")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    if install {
        let path = hostdev_core::udev::install(&env::root(false), &exe)?;
        emit(&format!("{}\n", path.display()))?;
    } else {
        emit(&hostdev_core::udev::rule_text(&exe))?;
    }
    Ok(ExitCode::SUCCESS)
}
