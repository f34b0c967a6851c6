//! `hostdevctl pool …` and `hostdevctl libvirt-hook …`: pools of devices
//! handed to consumers, and libvirt's qemu hook that allocates from them.
//! Parse → one core call (through the daemon when it answers) → render.

use crate::env::{self, Ctx};
use crate::native::Format;
use crate::output::{emit, emit_json, render, table, warn};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use hostdev_core::api::{
    AllocateRequest, Allocation, BindRequest, ConsumerId, DomainPrepareRequest,
    DomainReleaseRequest, PoolListQuery, PoolName, PoolShowQuery, ReconcileRequest, ReleaseRequest,
    Released, UnbindRequest,
};
use hostdev_core::Serve;
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
                        m.free.to_string(),
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
                            d.expires.map(|e| e.to_string()).unwrap_or_default(),
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
    match (op, sub) {
        ("prepare", "begin") => {
            let d = hostdev_model::libvirt::domain_mdevs(&xml).map_err(anyhow::Error::msg)?;
            if d.mdevs.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            ctx.call(&DomainPrepareRequest {
                domain: d.uuid,
                name: d.name,
                mdevs: d.mdevs,
            })?;
        }
        ("release", "end") => {
            let d = hostdev_model::libvirt::domain_mdevs(&xml).map_err(anyhow::Error::msg)?;
            if d.mdevs.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            ctx.call(&DomainReleaseRequest { domain: d.uuid })?;
        }
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}
