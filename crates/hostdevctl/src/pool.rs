//! `hostdevctl pool …` and `hostdevctl libvirt-hook …`: pools of devices
//! handed to consumers, and libvirt's qemu hook that allocates from them.
//! Parse → one core call (through the daemon when it answers) → render.

use crate::env::{self, Ctx};
use crate::native::Format;
use crate::output::{emit, emit_json, render, table, warn};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use hostdev_core::api::pool::NO_DEVICE_LIMIT;
use hostdev_core::api::{
    AllocateRequest, Allocation, BindRequest, ConsumerId, DomainHeldQuery, DomainMigrateRequest,
    DomainMigrated, DomainPrepareRequest, DomainReleaseRequest, IncomingDevice, Kind,
    PoolListQuery, PoolName, PoolShowQuery, ReconcileRequest, ReleaseRequest, Released,
    UnbindRequest,
};
use hostdev_core::Serve;
use hostdev_model::libvirt::domain::{
    metadata_element, read_domain, rewrite_domain, DomainRewrite, DomainXml, MetaDevice, XmlSource,
};
use hostdev_model::Uuid;
use serde_json::json;
use std::io::Read;
use std::process::ExitCode;

/// `300`, `300s`, `10m`, `2h`, `1d` → seconds.
fn ttl(s: &str) -> Result<u64, String> {
    let (n, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(format!(
                "'{s}' is not a duration: use seconds, or a number with s, m, h or d"
            ))
        }
    };
    n.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| {
            format!("'{s}' is not a duration: use seconds, or a number with s, m, h or d")
        })
}

/// Pool commands.
#[derive(Subcommand, Debug)]
pub enum PoolCmd {
    /// Every pool with its capacity and use
    List,
    /// One pool: members, devices and who holds them, bound UUIDs
    Show {
        /// The pool
        pool: PoolName,
    },
    /// Hand a device of the pool to a consumer (the same one again if it holds one)
    Allocate {
        /// The pool
        pool: PoolName,
        /// Who gets it (a VM's UUID or name, a job id)
        #[arg(long)]
        consumer: ConsumerId,
        /// This UUID (mdev pools): made with it on demand, or this pre-created device
        #[arg(long)]
        uuid: Option<Uuid>,
        /// A reservation that ends by itself (300, 90s, 10m, 2h; at most 30d); allocate again without it to keep the device
        #[arg(long, value_parser = ttl)]
        ttl: Option<u64>,
    },
    /// Give back what a consumer holds (in POOL, or in every pool), or one device
    Release {
        /// Only in this pool
        pool: Option<PoolName>,
        /// Everything this consumer holds
        #[arg(long, required_unless_present = "device")]
        consumer: Option<ConsumerId>,
        /// This device (mdev UUID, VF address or vDPA name)
        #[arg(long)]
        device: Option<String>,
    },
    /// Bind a UUID to an on-demand mdev pool: a domain naming it gets a device made with it
    Bind {
        /// The pool
        pool: PoolName,
        /// The UUID domains name
        #[arg(long)]
        uuid: Uuid,
    },
    /// Remove a UUID's binding
    Unbind {
        /// The UUID
        #[arg(long)]
        uuid: Uuid,
    },
    /// Undo interrupted work, end reservations, free what vanished or dead consumers held, fill pre-created pools
    Reconcile,
}

/// libvirt hook commands.
#[derive(Subcommand, Debug)]
pub enum HookCmd {
    /// Install the qemu hook (/etc/libvirt/hooks/qemu.d/50-hostdev); restart libvirtd afterwards
    Install,
    /// Print the hook script instead of installing it
    Print,
    /// What libvirt runs: DOMAIN OPERATION SUB-OPERATION EXTRA, the domain's XML on stdin
    #[command(hide = true)]
    Run {
        /// libvirt's arguments
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Write hostdev's metadata (each pool device with its migration spec) into a running domain with `virsh metadata --live`, so that the spec travels with a migration; the hook runs it by itself once a domain holding pool devices has started
    Annotate {
        /// The domain's UUID
        domain: Uuid,
        /// Print the element as the domain's XML will carry it instead of writing it
        #[arg(long)]
        print: bool,
    },
}

fn render_allocation(a: &Allocation, f: Format) -> Result<String> {
    Ok(match f {
        Format::Json => {
            serde_json::to_string_pretty(&json!({
                "pool": a.pool,
                "consumer": a.consumer,
                "id": a.id,
                "kind": a.kind,
                "member": a.member,
                "expires": a.expires,
                "again": a.again,
                "libvirt": a.libvirt,
            }))? + "\n"
        }
        Format::Libvirt => a.libvirt.clone(),
        Format::Table => format!("{}\n{}", a.id, a.libvirt),
    })
}

fn render_released(r: &Released, f: Format) -> String {
    render(
        f,
        &r.devices,
        &["POOL", "ID", "CONSUMER", "RESULT"],
        |d| json!({"pool": d.pool, "id": d.id, "consumer": d.consumer, "removed": d.removed}),
        |d| {
            vec![
                d.pool.clone(),
                d.id.clone(),
                d.consumer.clone(),
                if d.removed { "removed" } else { "free" }.to_string(),
            ]
        },
    )
}

/// Runs a pool command.
pub fn run<D: Serve>(ctx: &Ctx<D>, cmd: PoolCmd, f: Format) -> Result<ExitCode> {
    match cmd {
        PoolCmd::List => {
            let l = ctx.call(&PoolListQuery {})?;
            for p in &l.problems {
                warn(&format!("skipping {}: {}", p.path.display(), p.reason));
            }
            emit(&render(
                f,
                &l.pools,
                &[
                    "POOL",
                    "KIND",
                    "TYPE",
                    "MODE",
                    "PLACEMENT",
                    "MEMBERS",
                    "CAPACITY",
                    "ALLOCATED",
                    "FREE",
                ],
                |p| serde_json::to_value(p).unwrap_or_default(),
                |p| {
                    vec![
                        p.name.to_string(),
                        p.kind.to_string(),
                        p.type_label.clone(),
                        p.mode.clone(),
                        p.placement.clone(),
                        p.members.to_string(),
                        p.capacity.to_string(),
                        p.allocated.to_string(),
                        p.free.to_string(),
                    ]
                },
            ))?;
        }
        PoolCmd::Show { pool } => {
            let s = ctx.call(&PoolShowQuery { pool })?;
            if f == Format::Json {
                emit(&(serde_json::to_string_pretty(&s)? + "\n"))?;
                return Ok(ExitCode::SUCCESS);
            }
            let p = &s.summary;
            let mut out = format!(
                "pool {}: {} {} ({}, {}); {} of {} allocated, {} free\n\n",
                p.name, p.kind, p.type_label, p.mode, p.placement, p.allocated, p.capacity, p.free
            );
            let members: Vec<Vec<String>> = s
                .members
                .iter()
                .map(|m| {
                    vec![
                        m.name.clone(),
                        m.held.to_string(),
                        if m.free >= NO_DEVICE_LIMIT {
                            "no limit".to_string()
                        } else {
                            m.free.to_string()
                        },
                        m.note.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            out.push_str(&table(&["MEMBER", "HOLDS", "FREE", "NOTE"], &members));
            if !s.devices.is_empty() {
                out.push('\n');
                let devices: Vec<Vec<String>> = s
                    .devices
                    .iter()
                    .map(|d| {
                        vec![
                            d.id.clone(),
                            d.member.clone(),
                            d.state.clone(),
                            d.consumer.clone().unwrap_or_default(),
                            d.expires.map(ends_in).unwrap_or_default(),
                        ]
                    })
                    .collect();
                out.push_str(&table(
                    &["DEVICE", "MEMBER", "STATE", "CONSUMER", "EXPIRES"],
                    &devices,
                ));
            }
            if !s.bindings.is_empty() {
                out.push_str("\nbound UUIDs:\n");
                for u in &s.bindings {
                    out.push_str(&format!("  {u}\n"));
                }
            }
            emit(&out)?;
        }
        PoolCmd::Allocate {
            pool,
            consumer,
            uuid,
            ttl,
        } => {
            let a = ctx.call(&AllocateRequest {
                pool,
                consumer,
                uuid,
                ttl_secs: ttl,
            })?;
            emit(&render_allocation(&a, f)?)?;
        }
        PoolCmd::Release {
            pool,
            consumer,
            device,
        } => {
            let r = ctx.call(&ReleaseRequest {
                pool,
                consumer,
                device,
            })?;
            emit(&render_released(&r, f))?;
        }
        PoolCmd::Bind { pool, uuid } => {
            ctx.call(&BindRequest {
                pool: pool.clone(),
                uuid,
            })?;
            if f == Format::Json {
                emit(
                    &(serde_json::to_string_pretty(&json!({"pool": pool, "uuid": uuid}))? + "\n"),
                )?;
            }
        }
        PoolCmd::Unbind { uuid } => {
            ctx.call(&UnbindRequest { uuid })?;
            if f == Format::Json {
                emit(&(serde_json::to_string_pretty(&json!({"uuid": uuid}))? + "\n"))?;
            }
        }
        PoolCmd::Reconcile => {
            let r = ctx.call(&ReconcileRequest {})?;
            for p in &r.problems {
                warn(&format!("{}: {}", p.path.display(), p.reason));
            }
            emit(&render(
                f,
                &r.rows,
                &["POOL", "DEVICE", "ACTION", "WHY"],
                |x| serde_json::to_value(x).unwrap_or_default(),
                |x| {
                    vec![
                        x.pool.clone(),
                        x.id.clone(),
                        x.action.clone(),
                        x.why.clone(),
                    ]
                },
            ))?;
            if r.rows.iter().any(|x| x.action == "failed") {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a libvirt-hook command.
pub fn hook<D: Serve>(ctx: &Ctx<D>, cmd: HookCmd, f: Format) -> Result<ExitCode> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .context("cannot find this program's own path")?;
    match cmd {
        HookCmd::Print => match f {
            Format::Json => emit_json(&json!({"hook": hostdev_core::udev::hook_text(&exe)}))?,
            _ => emit(&hostdev_core::udev::hook_text(&exe))?,
        },
        HookCmd::Install => {
            let path = hostdev_core::udev::install_hook(&env::root(false), &exe)?;
            if f == Format::Json {
                emit_json(&json!({"installed": path}))?;
                return Ok(ExitCode::SUCCESS);
            }
            emit(&format!(
                "installed {}; restart libvirtd (or virtqemud) so that it runs the hook\n",
                path.display()
            ))?;
        }
        HookCmd::Run { args } => return hook_run(ctx, &args),
        HookCmd::Annotate { domain, print } => {
            let el = domain_metadata(ctx, domain, print)?;
            let json = |written: bool| {
                emit_json(&json!({"domain": domain, "metadata": el, "written": written}))
            };
            let Some(el) = el.clone() else {
                // Held devices whose spec cannot be told say why.
                let held = ctx.call(&DomainHeldQuery { domain })?;
                let why: Vec<String> = held
                    .devices
                    .iter()
                    .map(|h| {
                        format!(
                            "{} of pool {}: {}",
                            h.id,
                            h.pool,
                            h.why.as_deref().unwrap_or("no spec")
                        )
                    })
                    .collect();
                match (f, why.is_empty()) {
                    (Format::Json, _) => json(false)?,
                    (_, true) => emit(&format!("domain {domain} holds no pool device here\n"))?,
                    (_, false) => bail!(
                        "no migration spec can be told for what domain {domain} holds: {}",
                        why.join("; ")
                    ),
                }
                return Ok(ExitCode::SUCCESS);
            };
            if print {
                match f {
                    Format::Json => json(false)?,
                    _ => emit(&(el + "\n"))?,
                }
                return Ok(ExitCode::SUCCESS);
            }
            // virsh's connection: its own default, or LIBVIRT_DEFAULT_URI.
            let mut virsh = std::process::Command::new("virsh");
            let uri = hostdev_model::libvirt::domain::METADATA_NS;
            let key = hostdev_model::libvirt::domain::METADATA_KEY;
            let d = domain.to_string();
            let o = virsh
                .args(["-q", "metadata", "--domain", &d, "--uri", uri, "--key", key])
                .args(["--set", &el, "--live"])
                .stdin(std::process::Stdio::null())
                .output()
                .context("cannot run virsh")?;
            if !o.status.success() {
                bail!(
                    "virsh could not write hostdev's metadata into domain {domain}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
            if f == Format::Json {
                json(true)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// libvirt runs `hook DOMAIN OPERATION SUB-OPERATION EXTRA` with the domain
/// XML on stdin; a non-zero exit at `prepare` fails the start, and what is on
/// stderr becomes libvirt's error message.
fn hook_run<D: Serve>(ctx: &Ctx<D>, args: &[String]) -> Result<ExitCode> {
    let (op, sub) = match args {
        [_, op, sub, ..] => (op.as_str(), sub.as_str()),
        _ => bail!(
            "libvirt-hook run takes DOMAIN OPERATION SUB-OPERATION EXTRA, as libvirt passes them"
        ),
    };
    // Read all of stdin whatever the operation: libvirt writes the XML first.
    // Bounded: a domain is kilobytes; more than the bound is refused unread.
    const MAX_XML: u64 = 16 << 20;
    let mut xml = String::new();
    std::io::stdin()
        .take(MAX_XML + 1)
        .read_to_string(&mut xml)
        .context("cannot read the domain XML on stdin")?;
    if xml.len() as u64 > MAX_XML {
        bail!("the domain XML on stdin is larger than 16 MiB; it is not read");
    }
    if let Some(out) = hook_answer(ctx, op, sub, &xml)? {
        emit(&out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The hook's work for libvirt's OPERATION SUB-OPERATION with the domain's
/// XML as libvirt gave it; answers what to print (the domain's XML for this
/// host at `migrate begin`, where it changes; nothing otherwise).
pub fn hook_answer<D: Serve>(
    ctx: &Ctx<D>,
    op: &str,
    sub: &str,
    xml: &str,
) -> Result<Option<String>> {
    match (op, sub) {
        ("prepare", "begin") => {
            let d = read_domain(xml).map_err(anyhow::Error::msg)?;
            let req = prepare_request(&d);
            if !(req.mdevs.is_empty() && req.pci.is_empty() && req.vdpa.is_empty()) {
                ctx.call(&req)?;
            }
        }
        ("release", "end") => {
            let d = read_domain(xml).map_err(anyhow::Error::msg)?;
            if !d.devices.is_empty() {
                ctx.call(&DomainReleaseRequest { domain: d.uuid })?;
            }
        }
        // libvirt takes what is printed as the domain's XML here; nothing
        // printed keeps its own.
        ("migrate", "begin") => return Ok(hook_migrate(ctx, xml, false)?.xml),
        ("started", "begin") => {
            let d = read_domain(xml).map_err(anyhow::Error::msg)?;
            if !d.devices.is_empty() && domain_metadata(ctx, d.uuid, false)?.is_some() {
                annotate_later(d.uuid)?;
            }
        }
        _ => {}
    }
    Ok(None)
}

/// hostdev's metadata element for a domain (bare for `virsh metadata
/// --set`, or with its namespace as in a domain's XML): each pool device it
/// holds here with its spec; none where it holds none or no spec can be
/// told.
pub fn domain_metadata<D: Serve>(
    ctx: &Ctx<D>,
    domain: Uuid,
    with_ns: bool,
) -> Result<Option<String>> {
    let held = ctx.call(&DomainHeldQuery { domain })?;
    let meta: Vec<MetaDevice> = held
        .devices
        .into_iter()
        .filter_map(|h| {
            Some(MetaDevice {
                spec: h.spec?,
                pool: h.pool.to_string(),
                kind: h.kind.to_string(),
                id: h.id,
                source: h.source,
            })
        })
        .collect();
    Ok((!meta.is_empty()).then(|| metadata_element(&meta, with_ns)))
}

/// Writes the domain's metadata once the hook has returned: libvirtd holds
/// the domain's job while its hook runs, so a `virsh metadata` from inside
/// the hook would wait for the hook, which waits for it. A process of its
/// own (its own process group, no pipes back to libvirtd, which waits for
/// the hook's output to close) runs `libvirt-hook annotate`, and virsh waits
/// for the job to end.
fn annotate_later(domain: Uuid) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    std::process::Command::new(exe)
        .args(["libvirt-hook", "annotate", &domain.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .context("cannot start the metadata writer")?;
    Ok(())
}

/// What `prepare begin` asks for a domain: the sources it names.
fn prepare_request(d: &DomainXml) -> DomainPrepareRequest {
    let mut req = DomainPrepareRequest {
        domain: d.uuid,
        name: d.name.clone(),
        mdevs: Vec::new(),
        pci: Vec::new(),
        vdpa: Vec::new(),
    };
    for x in &d.devices {
        match &x.source {
            XmlSource::Mdev(u) => req.mdevs.push(*u),
            XmlSource::Pci(a) => req.pci.push(a.clone()),
            XmlSource::Vdpa(p) => req.vdpa.push(p.clone()),
        }
    }
    req
}

/// What the destination made of an arriving domain: the core's answer and
/// the XML to hand back (none where nothing changes).
pub(crate) struct Migrated {
    pub answer: DomainMigrated,
    pub xml: Option<String>,
}

/// A metadata entry's source as the element kind the domain names it by.
fn xml_source(kind: Kind, text: &str) -> Result<XmlSource> {
    Ok(match kind {
        Kind::Mdev => XmlSource::Mdev(
            text.parse()
                .with_context(|| format!("the mdev UUID {text:?} in hostdev's metadata"))?,
        ),
        Kind::Vgpu => XmlSource::Pci(
            text.parse()
                .with_context(|| format!("the PCI address {text:?} in hostdev's metadata"))?,
        ),
        Kind::Vdpa => XmlSource::Vdpa(text.to_string()),
    })
}

/// A domain arriving by migration (libvirt's `migrate begin` here): the
/// request from hostdev's metadata in its XML, one core call, and the XML
/// rewritten for this host's devices with this host's metadata.
pub(crate) fn hook_migrate<D: Serve>(ctx: &Ctx<D>, xml: &str, dry_run: bool) -> Result<Migrated> {
    let d = read_domain(xml).map_err(anyhow::Error::msg)?;
    let mut devices = Vec::new();
    for m in &d.meta {
        let kind = match m.kind.as_str() {
            "mdev" => Kind::Mdev,
            "vgpu" => Kind::Vgpu,
            "vdpa" => Kind::Vdpa,
            k => bail!(
                "hostdev's metadata names a device of kind {k:?}, which this hostdev does not know"
            ),
        };
        let source = xml_source(kind, &m.source)?;
        if !d.devices.iter().any(|x| x.source == source) {
            bail!(
                "hostdev's metadata lists {} of pool {}, but the domain does not name it",
                m.source,
                m.pool
            );
        }
        devices.push(IncomingDevice {
            pool: PoolName::new(m.pool.as_str()).map_err(anyhow::Error::msg)?,
            kind,
            id: m.id.clone(),
            source: m.source.clone(),
            spec: m.spec.clone(),
            qemu_props: d.qemu_props(&source),
        });
    }
    let unlisted_mdevs: Vec<Uuid> = d
        .devices
        .iter()
        .filter_map(|x| match &x.source {
            XmlSource::Mdev(u) if !d.meta.iter().any(|m| m.source == u.to_string()) => Some(*u),
            _ => None,
        })
        .collect();
    if devices.is_empty() && unlisted_mdevs.is_empty() {
        return Ok(Migrated {
            answer: DomainMigrated::default(),
            xml: None,
        });
    }
    let answer = ctx.call(&DomainMigrateRequest {
        domain: d.uuid,
        name: d.name.clone(),
        devices,
        unlisted_mdevs,
        dry_run,
    })?;
    if dry_run || answer.devices.is_empty() {
        return Ok(Migrated { answer, xml: None });
    }
    let mut rw = DomainRewrite::default();
    for a in &answer.devices {
        if a.from != a.to {
            rw.sources
                .push((xml_source(a.kind, &a.from)?, xml_source(a.kind, &a.to)?));
        }
        if let Some(spec) = &a.spec {
            rw.meta.push(MetaDevice {
                pool: a.pool.to_string(),
                kind: a.kind.to_string(),
                id: a.id.clone(),
                source: a.to.clone(),
                spec: spec.clone(),
            });
        }
    }
    let out = rewrite_domain(xml, &rw).map_err(anyhow::Error::msg)?;
    Ok(Migrated {
        answer,
        xml: Some(out),
    })
}

/// A reservation's end (seconds since the epoch) as the table shows it:
/// how long from now, in the largest unit that keeps it readable.
fn ends_in(at: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    match at.saturating_sub(now) {
        s if s <= 0 => "ended".into(),
        s if s < 120 => format!("in {s} s"),
        s if s < 7200 => format!("in {} min", s / 60),
        s if s < 172_800 => format!("in {} h", s / 3600),
        s => format!("in {} days", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_reservations_end_reads_as_time_from_now() {
        assert_eq!(super::ends_in(0), "ended");
        assert_eq!(super::ends_in(i64::MIN), "ended");
        let far = super::ends_in(i64::MAX);
        assert!(far.starts_with("in ") && far.ends_with(" days"), "{far}");
    }
}
