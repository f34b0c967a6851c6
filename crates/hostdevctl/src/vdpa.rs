//! `hostdevctl vdpa …`: vDPA devices over the kernel's vdpa netlink family.

use crate::env;
use crate::native::Format;
use crate::output::{emit, outcome_rows, table, warn};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use hostdev_core::vdpa::{VdpaDefinition, VdpaExport, VdpaStart, Vdpas};
use hostdev_vdpa::{CreateConfig, MgmtDevName, NetlinkVdpa, VdpaClient};
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
    #[arg(long)]
    mac: Option<String>,
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

impl Opts {
    fn config(&self) -> Result<CreateConfig> {
        if let Some(m) = &self.mac {
            hostdev_vdpa::parse_mac(m)?;
        }
        Ok(CreateConfig {
            mac: self.mac.clone(),
            mtu: self.mtu,
            max_vqp: self.max_vqp,
            features: self.features,
        })
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
        name: String,
        /// Management device (vdpasim_net, pci/0000:41:04.2)
        #[arg(long)]
        mgmtdev: String,
        #[command(flatten)]
        opts: Opts,
    },
    /// Delete a device
    Del {
        /// Device name
        name: String,
    },
    /// Define a persistent device
    Define {
        /// Device name
        name: String,
        /// Management device
        #[arg(long)]
        mgmtdev: String,
        #[command(flatten)]
        opts: Opts,
        /// Create it at every autostart
        #[arg(long)]
        auto: bool,
    },
    /// Remove a definition
    Undefine {
        /// Device name
        name: String,
    },
    /// Create a defined device
    Start {
        /// Device name
        name: String,
    },
    /// Delete a defined device (the definition stays)
    Stop {
        /// Device name
        name: String,
    },
    /// Change a definition (options given replace stored ones)
    Modify {
        /// Device name
        name: String,
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
        name: String,
        /// libvirt's <interface type='vdpa'> instead
        #[arg(long)]
        libvirt: bool,
    },
    /// A self-contained JSON spec of what to recreate
    Export {
        /// Device name
        name: String,
    },
    /// Recreate an export (creates it now unless only --define)
    Import {
        /// The export (a path, or - for stdin)
        file: PathBuf,
        /// Under another name
        #[arg(long)]
        name: Option<String>,
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

fn vdpas() -> Result<Vdpas<NetlinkVdpa>> {
    let root = env::root(false);
    Ok(Vdpas::new(NetlinkVdpa::open()?, &root))
}

fn mgmt(s: &str) -> Result<MgmtDevName> {
    Ok(MgmtDevName::parse(s)?)
}

/// Management device and start policy of a listed device, from the kernel or its definition.
fn row_facts(
    d: &Option<hostdev_vdpa::Dev>,
    def: &Option<VdpaDefinition>,
) -> (String, &'static str) {
    let m = d
        .as_ref()
        .map(|d| d.mgmtdev.to_string())
        .or(def.as_ref().map(|x| x.mgmtdev.to_string()))
        .unwrap_or_default();
    let start = match def {
        Some(x) if x.start == VdpaStart::Auto => "auto",
        Some(_) => "manual",
        None => "transient",
    };
    (m, start)
}

/// Runs one vDPA command.
pub fn run(cmd: VdpaCmd, f: Format) -> Result<ExitCode> {
    let v = vdpas()?;
    match cmd {
        VdpaCmd::Mgmtdev(MgmtCmd::List) => {
            let ms = v.client.mgmtdevs()?;
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
        } => v.add(&name, &mgmt(&mgmtdev)?, &opts.config()?)?,
        VdpaCmd::Del { name } | VdpaCmd::Stop { name } => v.del(&name)?,
        VdpaCmd::Define {
            name,
            mgmtdev,
            opts,
            auto,
        } => v.define(&VdpaDefinition {
            name,
            mgmtdev: mgmt(&mgmtdev)?,
            config: opts.config()?,
            start: if auto {
                VdpaStart::Auto
            } else {
                VdpaStart::Manual
            },
        })?,
        VdpaCmd::Undefine { name } => v.undefine(&name)?,
        VdpaCmd::Start { name } => v.start(&name)?,
        VdpaCmd::Modify {
            name,
            opts,
            auto,
            manual,
        } => {
            let c = opts.config()?;
            v.modify(&name, |d| {
                d.config.mac = c.mac.or(d.config.mac.take());
                d.config.mtu = c.mtu.or(d.config.mtu);
                d.config.max_vqp = c.max_vqp.or(d.config.max_vqp);
                d.config.features = c.features.or(d.config.features);
                if auto {
                    d.start = VdpaStart::Auto;
                } else if manual {
                    d.start = VdpaStart::Manual;
                }
            })?;
        }
        VdpaCmd::List { defined } => {
            let (rows, problems) = v.list()?;
            for p in &problems {
                warn("hostdevctl: warning: ", p);
            }
            let rows: Vec<_> = rows
                .into_iter()
                .filter(|r| !defined || r.2.is_some())
                .collect();
            emit(&match f {
                Format::Json => {
                    let js: Vec<_> = rows
                        .iter()
                        .map(|(n, d, def)| json!({"name": n, "mgmtdev": d.as_ref().map(|d| d.mgmtdev.to_string()).or(def.as_ref().map(|x| x.mgmtdev.to_string())), "running": d.is_some(), "definition": def}))
                        .collect();
                    serde_json::to_string_pretty(&js)? + "\n"
                }
                Format::Table | Format::Libvirt => {
                    let rs: Vec<Vec<String>> = rows
                        .iter()
                        .map(|(n, d, def)| {
                            let (m, start) = row_facts(d, def);
                            vec![
                                n.clone(),
                                m,
                                if d.is_some() {
                                    "running".into()
                                } else {
                                    "stopped".into()
                                },
                                start.into(),
                            ]
                        })
                        .collect();
                    table(&["NAME", "MGMTDEV", "STATE", "START"], &rs)
                }
            })?;
        }
        VdpaCmd::Show { name, libvirt } => {
            let s = v.show(&name)?;
            if libvirt || f == Format::Libvirt {
                let dev = s.vhost_dev.clone().with_context(|| {
                    format!("{name} is not bound to vhost_vdpa (no /dev/vhost-vdpa-N)")
                })?;
                emit(&format!(
                    "<interface type='vdpa'>\n  <source dev='{dev}'/>\n</interface>\n"
                ))?;
            } else {
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
                                if d.start == VdpaStart::Auto {
                                    "auto"
                                } else {
                                    "manual"
                                }
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
        VdpaCmd::Export { name } => {
            emit(&(serde_json::to_string_pretty(&v.export(&name)?)? + "\n"))?
        }
        VdpaCmd::Import {
            file,
            name,
            define,
            start,
        } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let e: VdpaExport = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a hostdev vDPA export", file.display()))?;
            let d = v.import(&e, name.as_deref(), define, start)?;
            emit(&format!("{}\n", d.name))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Restores vDPA devices for `autostart`. An absent vdpa family (module not
/// loaded) with no definitions is not an error.
pub fn restore_rows() -> Result<(Vec<[String; 5]>, usize)> {
    let root = env::root(false);
    let defs = hostdev_core::vdpa::definitions(&root);
    if defs.load_all()?.0.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let (r, problems) = vdpas()?.restore()?;
    for p in &problems {
        warn("hostdevctl: warning: ", p);
    }
    let (rows, failed) = outcome_rows("vdpa", r);
    Ok((rows, failed))
}

/// vDPA rows for `hostdevctl list`: kind, name, mgmtdev, class, state, start.
/// A host without the vdpa family and without definitions has none.
pub fn list_rows() -> Result<Vec<[String; 6]>> {
    let root = env::root(false);
    let defs = hostdev_core::vdpa::definitions(&root);
    let v = match NetlinkVdpa::open() {
        Ok(c) => Vdpas::new(c, &root),
        Err(_) if defs.load_all()?.0.is_empty() => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let (rows, problems) = v.list()?;
    for p in &problems {
        warn("hostdevctl: warning: ", p);
    }
    Ok(rows
        .into_iter()
        .map(|(n, d, def)| {
            let (m, start) = row_facts(&d, &def);
            let class = match d.as_ref().and_then(|d| d.device_id) {
                Some(1) => "net",
                Some(2) => "block",
                _ => "-",
            };
            [
                "vdpa".into(),
                n,
                m,
                class.into(),
                if d.is_some() {
                    "running".into()
                } else {
                    "stopped".into()
                },
                start.into(),
            ]
        })
        .collect())
}
