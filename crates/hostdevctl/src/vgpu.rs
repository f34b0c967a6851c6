//! `hostdevctl vgpu …`: NVIDIA vGPUs on SR-IOV virtual functions.

use crate::env;
use crate::native::Format;
use crate::output::{done, emit, emit_json, render, start_label, table, type_json, warn};
use anyhow::Result;
use clap::Subcommand;
use hostdev_core::vgpu::VgpuSlot;
use hostdev_model::vgpu::PciAddress;
use hostdev_model::StartPolicy;
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

/// Runs one vGPU command.
pub fn run(cmd: VgpuCmd, f: Format) -> Result<ExitCode> {
    let sys = env::system(false);
    let v = &sys.vgpu;
    match cmd {
        VgpuCmd::Types { pf } => {
            let pfs = v.types(pf.as_ref())?;
            let mut rows = Vec::new();
            let mut js = Vec::new();
            for p in &pfs {
                if p.types.is_empty() {
                    let why = if p.vfs == 0 {
                        "no VFs enabled (hostdevctl vgpu enable)"
                    } else {
                        "none creatable now"
                    };
                    rows.push(vec![p.pf.to_string(), "-".into(), why.into(), "0".into()]);
                }
                for t in &p.types {
                    js.push(json!({"parent": p.pf.as_str(), "type": type_json(t.id, Some(&t.name)), "vfs_creatable": t.free_vfs}));
                    rows.push(vec![
                        p.pf.to_string(),
                        t.id.to_string(),
                        t.name.clone(),
                        t.free_vfs.to_string(),
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
                warn(p);
            }
            let rows: Vec<_> = rows
                .into_iter()
                .filter(|r| !defined || r.def.is_some())
                .collect();
            emit(&render(
                f,
                &rows,
                &["VF", "PF", "CURRENT", "DEFINED", "START"],
                |r| {
                    json!({
                        "id": r.vf.as_str(), "kind": "vgpu", "parent": r.pf.as_str(),
                        "present": r.current.is_some(),
                        "current_type": r.current.filter(|c| *c != 0),
                        "type": r.def.as_ref().map(|d| type_json(d.type_id, Some(&d.type_name))),
                        "start": start_label(r.def.as_ref().map(|d| d.start)),
                    })
                },
                |r| {
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
                        start_label(r.def.as_ref().map(|d| d.start)).into(),
                    ]
                },
            ))?;
        }
        VgpuCmd::Define {
            vf,
            pf,
            type_,
            auto,
        } => {
            let slot = match (vf.clone(), pf) {
                (Some(vf), _) => VgpuSlot::Vf(vf),
                (None, Some(pf)) => VgpuSlot::AnyOf(pf),
                (None, None) => anyhow::bail!("give --vf or --pf"),
            };
            let d = v.define(&slot, &type_, StartPolicy::from_auto(auto))?;
            if f == Format::Json {
                done(
                    f,
                    json!({"kind": "vgpu", "id": d.vf.as_str(), "action": "defined",
                           "type": type_json(d.type_id, Some(&d.type_name)), "start": d.start.as_str()}),
                )?;
            } else if vf.is_none() {
                emit(&format!("{}\n", d.vf))?;
            }
        }
        VgpuCmd::Undefine { vf } => {
            v.undefine(&vf)?;
            done(
                f,
                json!({"kind": "vgpu", "id": vf.as_str(), "action": "undefined"}),
            )?;
        }
        VgpuCmd::Start { vf } => {
            let o = v.start(&vf)?;
            let action = match o {
                hostdev_core::DeviceOutcome::AlreadyRunning => "already-running",
                _ => "started",
            };
            done(
                f,
                json!({"kind": "vgpu", "id": vf.as_str(), "action": action}),
            )?;
        }
        VgpuCmd::Stop { vf } => {
            v.stop(&vf)?;
            done(
                f,
                json!({"kind": "vgpu", "id": vf.as_str(), "action": "stopped"}),
            )?;
        }
        VgpuCmd::Enable { pf, numvfs, auto } => {
            v.enable(&pf, numvfs, StartPolicy::from_auto(auto))?;
            done(
                f,
                json!({"kind": "pf", "id": pf.as_str(), "action": "enabled", "vfs": numvfs}),
            )?;
        }
        VgpuCmd::Libvirt { vf } => {
            let xml = v.libvirt(&vf)?;
            match f {
                Format::Json => {
                    emit_json(&json!({"kind": "vgpu", "id": vf.as_str(), "libvirt": xml}))?
                }
                _ => emit(&xml)?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
