//! `hostdevctl vdpa …`: vDPA devices over the kernel's vdpa netlink family.

use crate::env;
use crate::native::Format;
use crate::output::{done, emit, emit_json, render, table, type_json, warn};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use hostdev_core::api::{
    CreateConfig, MacAddr, MgmtDevName, StartPolicy, VdpaDefinition, VdpaEdit, VdpaExport, VdpaName,
};
use hostdev_core::vdpa::{Dev, Vdpas};
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

/// Management device and start policy of a listed device, from the kernel or its definition.
fn row_facts(d: &Option<Dev>, def: &Option<VdpaDefinition>) -> (String, &'static str) {
    let m = d
        .as_ref()
        .map(|d| d.mgmtdev.to_string())
        .or(def.as_ref().map(|x| x.mgmtdev.to_string()))
        .unwrap_or_default();
    let start = def
        .as_ref()
        .map(|x| x.start.as_str())
        .unwrap_or("transient");
    (m, start)
}

/// Runs one vDPA command.
pub fn run(cmd: VdpaCmd, f: Format) -> Result<ExitCode> {
    let sys = env::system(false);
    let v: &Vdpas<_> = &sys.vdpa;
    match cmd {
        VdpaCmd::Mgmtdev(MgmtCmd::List) => {
            let ms = v.mgmtdevs()?;
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
            v.add(&name, &mgmtdev, &opts.config())?;
            done(f, act(&name, "created"))?;
        }
        VdpaCmd::Del { name } => {
            v.del(&name)?;
            done(f, act(&name, "deleted"))?;
        }
        VdpaCmd::Stop { name } => {
            v.del(&name)?;
            done(f, act(&name, "stopped"))?;
        }
        VdpaCmd::Define {
            name,
            mgmtdev,
            opts,
            auto,
        } => {
            v.define(&VdpaDefinition {
                name: name.clone(),
                mgmtdev,
                config: opts.config(),
                start: StartPolicy::from_auto(auto),
            })?;
            done(f, act(&name, "defined"))?;
        }
        VdpaCmd::Undefine { name } => {
            v.undefine(&name)?;
            done(f, act(&name, "undefined"))?;
        }
        VdpaCmd::Start { name } => {
            v.start(&name)?;
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
            v.modify(
                &name,
                &VdpaEdit {
                    config: opts.config(),
                    start,
                },
            )?;
            done(f, act(&name, "modified"))?;
        }
        VdpaCmd::List { defined } => {
            // Definitions are configuration: listing them needs no vdpa module.
            let (rows, problems) = if defined {
                v.list_defined()?
            } else {
                v.list()?
            };
            for p in &problems {
                warn(p);
            }
            emit(&render(
                f,
                &rows,
                &["NAME", "MGMTDEV", "STATE", "START"],
                |(n, d, def)| {
                    let mgmtdev = d.as_ref().map(|d| d.mgmtdev.to_string());
                    let mgmtdev = mgmtdev.or(def.as_ref().map(|x| x.mgmtdev.to_string()));
                    let (_, start) = row_facts(d, def);
                    json!({
                        "id": n.as_str(), "kind": "vdpa", "parent": mgmtdev,
                        "type": d.as_ref().map(|d| type_json(class_name(d.device_id), None)),
                        "state": if d.is_some() { "running" } else { "stopped" },
                        "start": start, "definition": def,
                    })
                },
                |(n, d, def)| {
                    let (m, start) = row_facts(d, def);
                    let state = if d.is_some() { "running" } else { "stopped" };
                    vec![n.to_string(), m, state.into(), start.into()]
                },
            ))?;
        }
        VdpaCmd::Show { name, libvirt } => {
            if libvirt || f == Format::Libvirt {
                emit(&v.libvirt(&name)?)?;
            } else {
                let s = v.show(&name)?;
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
        VdpaCmd::Export { name } => emit_json(&v.export(&name)?)?,
        VdpaCmd::Import {
            file,
            name,
            define,
            start,
        } => {
            let bytes = crate::env::read_input(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let e: VdpaExport = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a hostdev vDPA export", file.display()))?;
            let d = v.import(&e, name.as_ref(), define, start)?;
            match f {
                Format::Json => emit_json(&act(&d.name, "imported"))?,
                _ => emit(&format!("{}\n", d.name))?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
