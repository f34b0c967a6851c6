//! `hostdevctl vgpu …`: NVIDIA vGPUs on SR-IOV virtual functions.

use crate::env;
use crate::native::Format;
use crate::output::{emit, outcome_rows, table, warn};
use anyhow::Result;
use clap::Subcommand;
use hostdev_core::vgpu::Vgpus;
use hostdev_model::vgpu::{PciAddress, Start};
use hostdev_sysfs::sriov::RealSriov;
use serde_json::json;
use std::process::ExitCode;

fn addr(s: &str) -> Result<PciAddress, String> {
    s.parse()
        .map_err(|e: hostdev_model::vgpu::PciAddressError| e.to_string())
}

/// vGPU commands.
#[derive(Subcommand, Debug)]
pub enum VgpuCmd {
    /// Types each PF's VFs can take now (ids are card-local)
    Types {
        /// Only this PF
        #[arg(long, value_parser = addr)]
        pf: Option<PciAddress>,
    },
    /// VFs with their current and defined types
    List {
        /// Only VFs with a definition
        #[arg(short, long)]
        defined: bool,
    },
    /// Define the vGPU type of a VF (or of a free VF of --pf that hostdev picks)
    Define {
        /// The VF
        #[arg(long, value_parser = addr, required_unless_present = "pf", conflicts_with = "pf")]
        vf: Option<PciAddress>,
        /// Let hostdev pick a free VF of this PF (and record which)
        #[arg(long, value_parser = addr)]
        pf: Option<PciAddress>,
        /// Type id (of this card) or name
        #[arg(short, long = "type")]
        type_: String,
        /// Restore at boot
        #[arg(short, long)]
        auto: bool,
    },
    /// Remove a VF's definition
    Undefine {
        /// The VF
        #[arg(long, value_parser = addr)]
        vf: PciAddress,
    },
    /// Write the defined type to the VF
    Start {
        /// The VF
        #[arg(long, value_parser = addr)]
        vf: PciAddress,
    },
    /// Clear the VF's type (refused while a VM uses it)
    Stop {
        /// The VF
        #[arg(long, value_parser = addr)]
        vf: PciAddress,
    },
    /// Define (and set now) how many VFs a PF has
    Enable {
        /// The PF
        #[arg(long, value_parser = addr)]
        pf: PciAddress,
        /// sriov_numvfs
        #[arg(long)]
        numvfs: u32,
        /// Restore at boot
        #[arg(short, long)]
        auto: bool,
    },
    /// A VF's libvirt <hostdev> element
    Libvirt {
        /// The VF
        #[arg(long, value_parser = addr)]
        vf: PciAddress,
    },
}

/// The vGPU side of the host.
pub fn vgpus() -> Vgpus<RealSriov> {
    let root = env::root(false);
    Vgpus::new(RealSriov::new(&root), &root)
}

/// libvirt's element for a configured VF.
pub fn libvirt_hostdev(vf: &PciAddress) -> String {
    let s = vf.as_str();
    format!(
        "<hostdev mode='subsystem' type='pci' managed='no'>\n  <source>\n    <address domain='0x{}' bus='0x{}' slot='0x{}' function='0x{}'/>\n  </source>\n</hostdev>\n",
        &s[0..4],
        &s[5..7],
        &s[8..10],
        &s[11..12]
    )
}

/// Runs one vGPU command.
pub fn run(cmd: VgpuCmd, f: Format) -> Result<ExitCode> {
    let v = vgpus();
    match cmd {
        VgpuCmd::Types { pf } => {
            let inv = v.inventory(pf.as_ref())?;
            let mut rows = Vec::new();
            let mut js = Vec::new();
            for (p, vfs) in &inv {
                let mut types: Vec<(u32, String, usize)> = Vec::new();
                for vf in vfs {
                    for t in &vf.creatable {
                        match types.iter_mut().find(|x| x.0 == t.id) {
                            Some(x) => x.2 += 1,
                            None => types.push((t.id, t.name.clone(), 1)),
                        }
                    }
                }
                types.sort();
                if types.is_empty() {
                    let why = if vfs.is_empty() {
                        "no VFs enabled (hostdevctl vgpu enable)"
                    } else {
                        "none creatable now"
                    };
                    rows.push(vec![
                        p.address.to_string(),
                        "-".into(),
                        why.into(),
                        "0".into(),
                    ]);
                }
                for (id, name, n) in types {
                    js.push(json!({"pf": p.address.as_str(), "id": id, "name": name, "vfs_creatable": n}));
                    rows.push(vec![
                        p.address.to_string(),
                        id.to_string(),
                        name,
                        n.to_string(),
                    ]);
                }
            }
            emit(&match f {
                Format::Json => serde_json::to_string_pretty(&js)? + "\n",
                Format::Table | Format::Libvirt => table(&["PF", "ID", "NAME", "FREE VFS"], &rows),
            })?;
        }
        VgpuCmd::List { defined } => {
            let (rows, problems) = v.list()?;
            for p in &problems {
                warn("hostdevctl: warning: ", p);
            }
            let rows: Vec<_> = rows
                .into_iter()
                .filter(|r| !defined || r.def.is_some())
                .collect();
            emit(&match f {
                Format::Json => {
                    let js: Vec<_> = rows
                        .iter()
                        .map(|r| {
                            json!({
                                "vf": r.vf.as_str(), "pf": r.pf.as_str(), "current_type": r.current,
                                "defined_type": r.def.as_ref().map(|d| json!({"id": d.type_id, "name": d.type_name})),
                                "start": r.def.as_ref().map(|d| if d.start == Start::Auto { "auto" } else { "manual" }),
                            })
                        })
                        .collect();
                    serde_json::to_string_pretty(&js)? + "\n"
                }
                Format::Table | Format::Libvirt => {
                    let rs: Vec<Vec<String>> = rows
                        .iter()
                        .map(|r| {
                            vec![
                                r.vf.to_string(),
                                r.pf.to_string(),
                                match r.current {
                                    None => "absent".into(),
                                    Some(0) => "-".into(),
                                    Some(c) => c.to_string(),
                                },
                                r.def
                                    .as_ref()
                                    .map(|d| format!("{} ({})", d.type_id, d.type_name))
                                    .unwrap_or_else(|| "-".into()),
                                r.def
                                    .as_ref()
                                    .map(|d| {
                                        if d.start == Start::Auto {
                                            "auto"
                                        } else {
                                            "manual"
                                        }
                                    })
                                    .unwrap_or("-")
                                    .into(),
                            ]
                        })
                        .collect();
                    table(&["VF", "PF", "CURRENT", "DEFINED", "START"], &rs)
                }
            })?;
        }
        VgpuCmd::Define {
            vf,
            pf,
            type_,
            auto,
        } => {
            let d = v.define(vf.as_ref(), pf.as_ref(), &type_, auto)?;
            if vf.is_none() {
                emit(&format!("{}\n", d.vf))?;
            }
        }
        VgpuCmd::Undefine { vf } => v.undefine(&vf)?,
        VgpuCmd::Start { vf } => {
            v.start(&vf)?;
        }
        VgpuCmd::Stop { vf } => v.stop(&vf)?,
        VgpuCmd::Enable { pf, numvfs, auto } => v.enable(&pf, numvfs, auto)?,
        VgpuCmd::Libvirt { vf } => emit(&libvirt_hostdev(&vf))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Restores vGPUs for `autostart`: rows of (kind, id, parent, result, error).
pub fn restore_rows(wait: std::time::Duration) -> Result<(Vec<[String; 5]>, usize)> {
    let (r, problems) = vgpus().restore(wait)?;
    for p in &problems {
        warn("hostdevctl: warning: ", p);
    }
    let (rows, failed) = outcome_rows("vgpu", r);
    Ok((rows, failed))
}
