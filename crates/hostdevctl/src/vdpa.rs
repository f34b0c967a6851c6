//! `hostdevctl vdpa …`: vDPA devices over the kernel's vdpa netlink family.

use crate::env::Ctx;
use crate::native::Format;
use crate::output::{done, emit, emit_json, render, table, type_json, warn};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use hostdev_api::{
    MgmtDevQuery, VdpaAddRequest, VdpaDefineRequest, VdpaDelRequest, VdpaExportRequest,
    VdpaImportRequest, VdpaLibvirtQuery, VdpaListQuery, VdpaModifyRequest, VdpaShowQuery,
    VdpaStartRequest, VdpaStopRequest, VdpaUndefineRequest,
};
use hostdev_core::api::{
    CreateConfig, MacAddr, MgmtDevName, StartPolicy, VdpaDefinition, VdpaEdit, VdpaExport, VdpaName,
};
use hostdev_core::Serve;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

fn hex(s: &str) -> Result<u64, String> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16)
        .map_err(|_| format!("'{s}' is not a hex number"))
}

/// Creation options.
#[derive(Args, Debug, Clone)]
pub struct Opts {
    /// MAC address
    #[arg(long, value_parser = mac_arg)]
    mac: Option<MacAddr>,
    /// MTU
    #[arg(long)]
    mtu: Option<u16>,
    /// Maximum virtqueue pairs
    #[arg(long = "max-vqp")]
    max_vqp: Option<u16>,
    /// Device features (hex)
    #[arg(long, value_parser = hex)]
    features: Option<u64>,
}

fn mac_arg(s: &str) -> Result<MacAddr, String> {
    s.parse()
        .map_err(|e: hostdev_core::api::VdpaValueError| e.to_string())
}

fn name_arg(s: &str) -> Result<VdpaName, String> {
    VdpaName::new(s).map_err(|e| e.to_string())
}

fn mgmt_arg(s: &str) -> Result<MgmtDevName, String> {
    MgmtDevName::parse(s).map_err(|e| e.to_string())
}

impl Opts {
    fn config(&self) -> CreateConfig {
        CreateConfig {
            mac: self.mac,
            mtu: self.mtu,
            max_vqp: self.max_vqp,
            features: self.features,
        }
    }
}

/// vDPA commands.
#[derive(Subcommand, Debug)]
pub enum VdpaCmd {
    /// Management devices
    #[command(subcommand)]
    Mgmtdev(MgmtCmd),
    /// Create a device now (transient)
    Add {
        /// Device name
        #[arg(value_parser = name_arg)]
        name: VdpaName,
        /// Management device (vdpasim_net, pci/0000:41:04.2)
        #[arg(long, value_parser = mgmt_arg)]
        mgmtdev: MgmtDevName,
        #[allow(missing_docs)]
        #[command(flatten)]
        opts: Opts,
    },
    /// Delete a device
    Del {
        /// Device name
        #[arg(value_parser = name_arg)]
        name: VdpaName,
    },
    /// Define a persistent device
    Define {
        /// Device name
        #[arg(value_parser = name_arg)]
        name: VdpaName,
        /// Management device
        #[arg(long, value_parser = mgmt_arg)]
        mgmtdev: MgmtDevName,
        #[allow(missing_docs)]
        #[command(flatten)]
        opts: Opts,
        /// Create it at every autostart
        #[arg(long)]
        auto: bool,
    },
    /// Remove a definition
    Undefine {
        /// Device name
        #[arg(value_parser = name_arg)]
        name: VdpaName,
    },
    /// Create a defined device
    Start {
        /// Device name
        #[arg(value_parser = name_arg)]
        name: VdpaName,
    },
    /// Delete a defined device (the definition stays)
    Stop {
        /// Device name
        #[arg(value_parser = name_arg)]
        name: VdpaName,
    },
    /// Change a definition (options given replace stored ones)
    Modify {
        /// Device name
        #[arg(value_parser = name_arg)]
        name: VdpaName,
        #[allow(missing_docs)]
        #[command(flatten)]
        opts: Opts,
        /// Create it at autostart
        #[arg(long, conflicts_with = "manual")]
        auto: bool,
        /// Only on request
        #[arg(long)]
        manual: bool,
    },
    /// Devices and definitions
    List {
        /// Only defined ones
        #[arg(long)]
        defined: bool,
    },
    /// Creation config, live config, limits, vhost device, driver (-o libvirt: the <interface>)
    Show {
        /// Device name
        #[arg(value_parser = name_arg)]
        name: VdpaName,
        /// libvirt's <interface type='vdpa'> instead
        #[arg(long)]
        libvirt: bool,
    },
    /// A self-contained JSON spec of what to recreate
    Export {
        /// Device name
        #[arg(value_parser = name_arg)]
        name: VdpaName,
    },
    /// Recreate an export (creates it now unless only --define)
    Import {
        /// The export (a path, or - for stdin)
        file: PathBuf,
        /// Under another name
        #[arg(long, value_parser = name_arg)]
        name: Option<VdpaName>,
        /// Store a definition
        #[arg(long)]
        define: bool,
        /// Create it now (the default without --define)
        #[arg(long)]
        start: bool,
    },
}

/// Management device commands.
#[derive(Subcommand, Debug)]
pub enum MgmtCmd {
    /// List them
    List,
}

/// `{"kind": "vdpa", "id", "action"}` for `-o json`.
fn act(name: &VdpaName, action: &str) -> serde_json::Value {
    json!({"kind": "vdpa", "id": name.as_str(), "action": action})
}

/// The virtio class of a device id, as the tree and listings name it.
fn class_name(device_id: Option<u32>) -> String {
    match device_id {
        Some(1) => "net".into(),
        Some(2) => "block".into(),
        Some(n) => format!("virtio-{n}"),
        None => "unknown".into(),
    }
}

/// Runs one vDPA command: one operation, through the daemon when it answers.
pub fn run<D: Serve>(ctx: &Ctx<D>, cmd: VdpaCmd, f: Format) -> Result<ExitCode> {
    match cmd {
        VdpaCmd::Mgmtdev(MgmtCmd::List) => {
            let ms = ctx.call(&MgmtDevQuery {})?;
            emit(&match f {
                Format::Json => serde_json::to_string_pretty(&ms)? + "\n",
                Format::Table | Format::Libvirt => {
                    let rows: Vec<Vec<String>> = ms
                        .iter()
                        .map(|m| {
                            let classes: Vec<&str> = m
                                .classes
                                .iter()
                                .map(|c| match c {
                                    1 => "net",
                                    2 => "block",
                                    _ => "other",
                                })
                                .collect();
                            vec![
                                m.name.to_string(),
                                classes.join(","),
                                m.max_vqs.map(|x| x.to_string()).unwrap_or_default(),
                                m.supported_features
                                    .map(|x| format!("{x:#x}"))
                                    .unwrap_or_default(),
                            ]
                        })
                        .collect();
                    table(&["MGMTDEV", "CLASSES", "MAX VQS", "FEATURES"], &rows)
                }
            })?;
        }
        VdpaCmd::Add {
            name,
            mgmtdev,
            opts,
        } => {
            ctx.call(&VdpaAddRequest {
                name: name.clone(),
                mgmtdev,
                config: opts.config(),
            })?;
            done(f, act(&name, "created"))?;
        }
        VdpaCmd::Del { name } => {
            ctx.call(&VdpaDelRequest { name: name.clone() })?;
            done(f, act(&name, "deleted"))?;
        }
        VdpaCmd::Stop { name } => {
            ctx.call(&VdpaStopRequest { name: name.clone() })?;
            done(f, act(&name, "stopped"))?;
        }
        VdpaCmd::Define {
            name,
            mgmtdev,
            opts,
            auto,
        } => {
            ctx.call(&VdpaDefineRequest {
                definition: VdpaDefinition {
                    name: name.clone(),
                    mgmtdev,
                    config: opts.config(),
                    start: StartPolicy::from_auto(auto),
                },
            })?;
            done(f, act(&name, "defined"))?;
        }
        VdpaCmd::Undefine { name } => {
            ctx.call(&VdpaUndefineRequest { name: name.clone() })?;
            done(f, act(&name, "undefined"))?;
        }
        VdpaCmd::Start { name } => {
            ctx.call(&VdpaStartRequest { name: name.clone() })?;
            done(f, act(&name, "started"))?;
        }
        VdpaCmd::Modify {
            name,
            opts,
            auto,
            manual,
        } => {
            let start = match (auto, manual) {
                (true, _) => Some(StartPolicy::Auto),
                (_, true) => Some(StartPolicy::Manual),
                _ => None,
            };
            ctx.call(&VdpaModifyRequest {
                name: name.clone(),
                edit: VdpaEdit {
                    config: opts.config(),
                    start,
                },
            })?;
            done(f, act(&name, "modified"))?;
        }
        VdpaCmd::List { defined } => {
            let listing = ctx.call(&VdpaListQuery { defined })?;
            for p in &listing.problems {
                warn(p);
            }
            emit(&render(
                f,
                &listing.rows,
                &["NAME", "MGMTDEV", "STATE", "START"],
                |r| {
                    json!({
                        "id": r.name.as_str(), "kind": "vdpa",
                        "parent": r.mgmtdev().map(|m| m.to_string()),
                        "type": r.device.as_ref().map(|d| type_json(class_name(d.device_id), None)),
                        "state": if r.device.is_some() { "running" } else { "stopped" },
                        "start": start_word(r.start()), "definition": r.definition,
                    })
                },
                |r| {
                    let state = if r.device.is_some() {
                        "running"
                    } else {
                        "stopped"
                    };
                    vec![
                        r.name.to_string(),
                        r.mgmtdev().map(|m| m.to_string()).unwrap_or_default(),
                        state.into(),
                        start_word(r.start()).into(),
                    ]
                },
            ))?;
        }
        VdpaCmd::Show { name, libvirt } => {
            if libvirt || f == Format::Libvirt {
                emit(&ctx.call(&VdpaLibvirtQuery { name })?.xml)?;
            } else {
                let s = ctx.call(&VdpaShowQuery { name: name.clone() })?;
                match f {
                    Format::Json => emit(&(serde_json::to_string_pretty(&s)? + "\n"))?,
                    Format::Table | Format::Libvirt => {
                        let mut out = format!("name: {name}\n");
                        if let Some(d) = &s.device {
                            out += &format!(
                                "mgmtdev: {}\ndevice id: {}\nmax vqs: {}\nmax vq size: {}\n",
                                d.mgmtdev,
                                d.device_id.map(|x| x.to_string()).unwrap_or_default(),
                                d.max_vqs.map(|x| x.to_string()).unwrap_or_default(),
                                d.max_vq_size.map(|x| x.to_string()).unwrap_or_default()
                            );
                        } else {
                            out += "state: not created\n";
                        }
                        if let Some(d) = &s.definition {
                            out += &format!(
                                "creation config: {}\nstart: {}\n",
                                serde_json::to_string(&d.config)?,
                                d.start.as_str()
                            );
                        }
                        if let Some(l) = &s.live {
                            out += &format!("live config: {}\n", serde_json::to_string(l)?);
                        }
                        out += &format!(
                            "vhost device: {}\ndriver: {}\n",
                            s.vhost_dev.as_deref().unwrap_or("-"),
                            s.driver.as_deref().unwrap_or("-")
                        );
                        emit(&out)?;
                    }
                }
            }
        }
        VdpaCmd::Export { name } => emit_json(&ctx.call(&VdpaExportRequest { name })?)?,
        VdpaCmd::Import {
            file,
            name,
            define,
            start,
        } => {
            let bytes = crate::input::read(&file, "the export")?;
            let export: VdpaExport = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a hostdev vDPA export", file.display()))?;
            let d = ctx.call(&VdpaImportRequest {
                export,
                name,
                define,
                start,
            })?;
            match f {
                Format::Json => emit_json(&act(&d.name, "imported"))?,
                _ => emit(&format!("{}\n", d.name))?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A listed device's start policy as listings word it.
fn start_word(s: Option<StartPolicy>) -> &'static str {
    s.map(StartPolicy::as_str).unwrap_or("transient")
}
