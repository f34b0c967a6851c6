//! `hostdevctl probe DEVICE`: what a device answers when opened as QEMU
//! opens it (VFIO): display, migration, device API, regions, irqs.

use crate::env::Ctx;
use crate::native::Format;
use crate::output::emit;
use anyhow::{bail, Result};
use hostdev_core::api::{ProbeQuery, ProbeReport, ProbeTarget, ProbeTypeRequest};
use hostdev_core::Serve;
use hostdev_model::{ParentName, TypeId};
use std::process::ExitCode;

/// The device named on the command line: a UUID is an mdev, an address a
/// PCI function.
pub(crate) fn target(device: &str) -> Result<ProbeTarget> {
    if let Ok(u) = device.parse() {
        return Ok(ProbeTarget::Mdev(u));
    }
    if let Ok(a) = device.parse() {
        return Ok(ProbeTarget::Pci(a));
    }
    bail!(
        "'{}' is neither an mdev UUID nor a PCI address (DDDD:BB:DD.F)",
        device.escape_debug()
    )
}

fn text(r: &ProbeReport) -> String {
    let p = &r.probe;
    let what = match (&r.kind, &r.type_id, &r.parent) {
        (Some(k), Some(t), Some(par)) => format!("{} {t} on {par}", k.as_str()),
        (Some(k), None, Some(par)) => format!("{} on {par}", k.as_str()),
        (Some(k), _, None) => k.as_str().to_string(),
        (None, _, _) => "PCI function".to_string(),
    };
    let driver = r
        .driver
        .as_deref()
        .map(|d| format!(", driver {d}"))
        .unwrap_or_default();
    let identity = r
        .identity
        .as_ref()
        .map(|i| {
            let parts: Vec<String> = [
                i.module.as_ref().map(|m| format!("module {m}")),
                i.version.as_ref().map(|v| format!("version {v}")),
                i.srcversion.as_ref().map(|v| format!("srcversion {v}")),
                i.kernel.as_ref().map(|k| format!("kernel {k}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            if parts.is_empty() {
                String::new()
            } else {
                format!("built by   {}\n", parts.join(", "))
            }
        })
        .unwrap_or_default();
    let source = match &r.cached {
        Some(c) => format!("source     the cache, {} s old: {}\n", c.age_secs, c.why),
        None => String::new(),
    };
    let display = match p.display {
        d if d.needs_opengl() => format!(
            "{} (QEMU needs OpenGL to show it: egl-headless or a GL display)",
            d.as_str()
        ),
        d => d.as_str().to_string(),
    };
    let migration = match &p.migration {
        Some(m) => m.words().join(" "),
        None => "none".to_string(),
    };
    let regions: Vec<String> = p
        .regions
        .iter()
        .filter(|g| g.size > 0)
        .map(|g| {
            let mut fl = String::new();
            fl.push(if g.read { 'r' } else { '-' });
            fl.push(if g.write { 'w' } else { '-' });
            if g.mmap {
                fl.push_str(" mmap");
            }
            format!("{}: {} bytes {fl}", g.index, g.size)
        })
        .collect();
    let irqs: Vec<String> = p
        .irqs
        .iter()
        .filter(|i| i.count > 0)
        .map(|i| format!("{}: {}", i.index, i.count))
        .collect();
    let none = |v: Vec<String>| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join("; ")
        }
    };
    format!(
        "device     {} ({what}{driver})\n\
         api        {}{}\n\
         display    {display}\n\
         migration  {migration}\n\
         regions    {}\n\
         irqs       {}\n{identity}{source}",
        r.id,
        p.device_api,
        if p.reset { ", resettable" } else { "" },
        none(regions),
        none(irqs),
    )
}

/// Runs `probe`: one device, or a type on a parent.
pub fn run<D: Serve>(
    ctx: &Ctx<D>,
    device: Option<&str>,
    of_type: Option<(String, String)>,
    f: Format,
) -> Result<ExitCode> {
    if f == Format::Libvirt && device.is_none() {
        bail!("`probe --parent --type` has no libvirt form (the device it made is gone); use -o table or -o json");
    }
    let r = match (device, of_type) {
        (Some(d), _) => ctx.call(&ProbeQuery { device: target(d)? })?,
        (None, Some((parent, t))) => {
            let req = ProbeTypeRequest {
                parent: ParentName::new(parent)?,
                mdev_type: TypeId::new(t)?,
            };
            crate::output::progress("probing a transient device of the type", || ctx.call(&req))?
        }
        (None, None) => bail!("probe takes a device, or --parent and --type"),
    };
    for w in &r.warnings {
        crate::output::warn(w);
    }
    match f {
        Format::Json => emit(&(serde_json::to_string_pretty(&r)? + "\n"))?,
        Format::Libvirt => {
            let Ok(u) = r.id.parse() else {
                bail!("`probe -o libvirt` is for mdevs; a PCI function's element is `hostdevctl vgpu libvirt --vf ADDRESS`");
            };
            emit(&hostdev_model::libvirt::mdev_hostdev_probed(
                &u,
                &r.probe.device_api,
                r.probe.display,
            ))?
        }
        Format::Table => emit(&text(&r))?,
    }
    Ok(ExitCode::SUCCESS)
}
