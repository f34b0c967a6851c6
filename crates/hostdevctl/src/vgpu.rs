//! `hostdevctl vgpu …`: NVIDIA vGPUs on SR-IOV virtual functions.

use crate::env::Ctx;
use crate::native::Format;
use crate::output::{done, emit, emit_json, render, start_label, table, type_json, warn};
use anyhow::Result;
use clap::Subcommand;
use hostdev_api::{
    PfDisableRequest, PfEnableRequest, StartOutcome, VgpuDefineRequest, VgpuLibvirtQuery,
    VgpuListQuery, VgpuSlot, VgpuStartRequest, VgpuStopRequest, VgpuTypesQuery,
    VgpuUndefineRequest,
};
use hostdev_core::Serve;
use hostdev_model::pci::PciAddress;
use hostdev_model::StartPolicy;
use serde_json::json;
use std::process::ExitCode;

fn addr(s: &str) -> Result<PciAddress, String> {
    s.parse()
        .map_err(|e: hostdev_model::pci::PciAddressError| e.to_string())
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
    /// Set a PF's VFs to 0 and remove its VF count definition (refused while a VF carries a type)
    Disable {
        /// The PF
        #[arg(long, value_parser = addr)]
        pf: PciAddress,
    },
    /// A VF's libvirt <hostdev> element
    Libvirt {
        /// The VF
        #[arg(long, value_parser = addr)]
        vf: PciAddress,
    },
}

/// Runs one vGPU command: one operation, through the daemon when it answers.
pub fn run<D: Serve>(ctx: &Ctx<D>, cmd: VgpuCmd, f: Format) -> Result<ExitCode> {
    match cmd {
        VgpuCmd::Types { pf } => {
            let pfs = ctx.call(&VgpuTypesQuery { pf })?;
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
            let listing = ctx.call(&VgpuListQuery { defined })?;
            for p in &listing.problems {
                warn(p);
            }
            emit(&render(
                f,
                &listing.rows,
                &["VF", "PF", "CURRENT", "DEFINED", "START"],
                |r| {
                    json!({
                        "id": r.vf.as_str(), "kind": "vgpu", "parent": r.pf.as_str(),
                        "present": r.current.is_some(),
                        "current_type": r.current.filter(|c| *c != 0),
                        "type": r.definition.as_ref().map(|d| type_json(d.type_id, Some(&d.type_name))),
                        "start": start_label(r.definition.as_ref().map(|d| d.start)),
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
                        r.definition
                            .as_ref()
                            .map(|d| format!("{} ({})", d.type_id, d.type_name))
                            .unwrap_or_else(|| "-".into()),
                        start_label(r.definition.as_ref().map(|d| d.start)).into(),
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
                (None, Some(pf)) => VgpuSlot::Pf(pf),
                (None, None) => anyhow::bail!("give --vf or --pf"),
            };
            let d = ctx.call(&VgpuDefineRequest {
                slot,
                type_,
                start: StartPolicy::from_auto(auto),
            })?;
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
            ctx.call(&VgpuUndefineRequest { vf: vf.clone() })?;
            done(
                f,
                json!({"kind": "vgpu", "id": vf.as_str(), "action": "undefined"}),
            )?;
        }
        VgpuCmd::Start { vf } => {
            let s = ctx.call(&VgpuStartRequest { vf: vf.clone() })?;
            let action = match s.outcome {
                StartOutcome::AlreadyRunning => "already-running",
                StartOutcome::Started => "started",
            };
            done(
                f,
                json!({"kind": "vgpu", "id": vf.as_str(), "action": action}),
            )?;
        }
        VgpuCmd::Stop { vf } => {
            ctx.call(&VgpuStopRequest { vf: vf.clone() })?;
            done(
                f,
                json!({"kind": "vgpu", "id": vf.as_str(), "action": "stopped"}),
            )?;
        }
        VgpuCmd::Enable { pf, numvfs, auto } => {
            ctx.call(&PfEnableRequest {
                pf: pf.clone(),
                numvfs,
                start: StartPolicy::from_auto(auto),
            })?;
            done(
                f,
                json!({"kind": "pf", "id": pf.as_str(), "action": "enabled", "vfs": numvfs}),
            )?;
        }
        VgpuCmd::Disable { pf } => {
            ctx.call(&PfDisableRequest { pf: pf.clone() })?;
            done(
                f,
                json!({"kind": "pf", "id": pf.as_str(), "action": "disabled"}),
            )?;
        }
        VgpuCmd::Libvirt { vf } => {
            let xml = ctx.call(&VgpuLibvirtQuery { vf: vf.clone() })?.xml;
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
