//! `hostdevctl tree`: the host's topology in one picture — SR-IOV PFs → VFs →
//! vGPU types, mdev parents → types (capacity) → devices, vDPA management
//! devices → devices — each device with its state and start policy.
//!
//! Owns: the tree's layout and colour. Must not: ask the kernel itself (it
//! renders the core's answers).

use crate::env::Ctx;
use crate::native::Format;
use crate::output::{emit, emit_json, start_label, warn, Paint};
use anyhow::Result;
use hostdev_core::api::{DeviceRow, Kind, TopologyQuery};
use hostdev_core::Serve;
use serde_json::json;
use std::process::ExitCode;

/// One line of the tree: its depth and its text (already painted).
struct Out {
    lines: Vec<(usize, String)>,
}

impl Out {
    fn push(&mut self, depth: usize, s: String) {
        self.lines.push((depth, s));
    }

    /// Draws the branches: `├─`/`└─` by whether a later sibling follows.
    fn render(&self) -> String {
        let mut out = String::new();
        for (i, (depth, text)) in self.lines.iter().enumerate() {
            if *depth == 0 {
                out.push_str(text);
                out.push('\n');
                continue;
            }
            let mut prefix = String::new();
            for d in 1..=*depth {
                // Is there a later line at depth d before the tree goes shallower than d?
                let more = self.lines[i + 1..]
                    .iter()
                    .take_while(|(k, _)| *k >= d)
                    .any(|(k, _)| *k == d);
                prefix.push_str(match (d == *depth, more) {
                    (true, true) => "├─ ",
                    (true, false) => "└─ ",
                    (false, true) => "│  ",
                    (false, false) => "   ",
                });
            }
            out.push_str(&prefix);
            out.push_str(text);
            out.push('\n');
        }
        out
    }
}

fn device_line(p: &Paint, r: &DeviceRow, with_type: bool) -> String {
    let state = r.state.as_str();
    let state = match state {
        "running" => p.green(state),
        _ => p.yellow(state),
    };
    let ty = if with_type {
        format!(
            "  {}",
            r.type_
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into())
        )
    } else {
        String::new()
    };
    format!("{}{ty}  {state}  {}", r.id, start_label(r.start))
}

/// Whether a row is of the mdev type `t`.
fn of_type(r: &DeviceRow, t: &str) -> bool {
    r.type_.as_ref().is_some_and(|x| x.id == t)
}

/// Prints the tree (or the same as nested JSON): one operation, the topology.
pub fn run<D: Serve>(ctx: &Ctx<D>, f: Format) -> Result<ExitCode> {
    let topo = ctx.call(&TopologyQuery {})?;
    let inv = &topo.inventory;
    for p in &inv.problems {
        warn(p);
    }
    for u in &inv.unavailable {
        warn(u);
    }
    let of = |k: Kind, parent: &str| -> Vec<&DeviceRow> {
        inv.devices
            .iter()
            .filter(|r| r.kind == k && r.parent == parent)
            .collect()
    };
    let pfs = &topo.pfs;
    let parents = &topo.parents;
    let mgmt_names: Vec<String> = topo.mgmtdevs.iter().map(|m| m.name.to_string()).collect();
    // vDPA devices defined on a management device that is not there now.
    let mut vdpa_parents = mgmt_names.clone();
    for r in inv.devices.iter().filter(|r| r.kind == Kind::Vdpa) {
        if !vdpa_parents.contains(&r.parent) {
            vdpa_parents.push(r.parent.clone());
        }
    }
    if f == Format::Json {
        let js = json!({
            "sriov": pfs.iter().map(|p| json!({
                "id": p.pf.as_str(),
                "kind": "pf",
                "vfs": p.vfs,
                "types": p.types.iter().map(|t| json!({"id": t.id, "name": t.name, "vfs_creatable": t.free_vfs})).collect::<Vec<_>>(),
                "devices": of(Kind::Vgpu, p.pf.as_str()),
            })).collect::<Vec<_>>(),
            "mdev": parents.iter().map(|pt| (&pt.parent, &pt.types)).map(|(parent, types)| json!({
                "id": parent.as_str(),
                "kind": "parent",
                "types": types.iter().map(|t| json!({
                    "id": t.type_id.as_str(),
                    "name": t.name.as_deref().map(str::trim),
                    "available_instances": t.available_instances,
                    "devices": of(Kind::Mdev, parent.as_str()).into_iter().filter(|r| of_type(r, t.type_id.as_str())).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "vdpa": vdpa_parents.iter().map(|m| json!({
                "id": m,
                "kind": "mgmtdev",
                "present": mgmt_names.contains(m),
                "devices": of(Kind::Vdpa, m),
            })).collect::<Vec<_>>(),
            "unavailable": inv.unavailable.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
        });
        emit_json(&js)?;
        return Ok(ExitCode::SUCCESS);
    }
    let p = Paint::stdout();
    let mut out = Out { lines: Vec::new() };
    out.push(0, p.bold("SR-IOV PFs (NVIDIA vGPU)"));
    if pfs.is_empty() {
        out.push(1, p.dim("none"));
    }
    for pf in pfs {
        out.push(1, format!("{}  {} VFs", p.bold(pf.pf.as_str()), pf.vfs));
        for r in of(Kind::Vgpu, pf.pf.as_str()) {
            out.push(2, device_line(&p, r, true));
        }
        if !pf.types.is_empty() {
            out.push(2, p.dim("types creatable now"));
            for t in &pf.types {
                out.push(3, format!("{} {}  ({} VFs)", t.id, t.name, t.free_vfs));
            }
        }
    }
    out.push(0, p.bold("mdev parents"));
    if parents.is_empty() {
        out.push(1, p.dim("none"));
    }
    for (parent, types) in parents.iter().map(|pt| (&pt.parent, &pt.types)) {
        out.push(1, p.bold(parent.as_str()));
        let devices = of(Kind::Mdev, parent.as_str());
        for t in types {
            let name = t.name.as_deref().map(str::trim).unwrap_or("");
            out.push(
                2,
                format!(
                    "{} {}  ({} available)",
                    t.type_id, name, t.available_instances
                ),
            );
            for r in devices.iter().filter(|r| of_type(r, t.type_id.as_str())) {
                out.push(3, device_line(&p, r, false));
            }
        }
        // Devices whose type the parent does not offer (defined for later).
        for r in devices
            .iter()
            .filter(|r| !types.iter().any(|t| of_type(r, t.type_id.as_str())))
        {
            out.push(2, device_line(&p, r, true));
        }
    }
    out.push(0, p.bold("vDPA management devices"));
    if let Some(why) = &topo.mgmtdevs_unavailable {
        out.push(1, p.dim(&format!("not available: {why}")));
    } else if vdpa_parents.is_empty() {
        out.push(1, p.dim("none"));
    }
    for m in &vdpa_parents {
        let label = if mgmt_names.contains(m) {
            p.bold(m)
        } else {
            format!("{}  {}", p.bold(m), p.yellow("absent"))
        };
        out.push(1, label);
        for r in of(Kind::Vdpa, m) {
            out.push(2, device_line(&p, r, false));
        }
    }
    emit(&out.render())?;
    Ok(ExitCode::SUCCESS)
}
