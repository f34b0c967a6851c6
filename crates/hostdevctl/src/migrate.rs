//! `hostdevctl migrate export|check`: the spec a source device exports, and
//! a destination device judged against it.

use crate::env::Ctx;
use crate::native::Format;
use crate::output::{emit, table};
use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use hostdev_core::api::{
    ExportTarget, MigrateCheckRequest, MigrateExportRequest, MigratePrepareRequest, ProbeTarget,
};
use hostdev_core::Serve;
use hostdev_model::migrate::{DriverPolicy, MigrationSpec, Verdict};
use hostdev_model::Uuid;
use std::process::ExitCode;

/// How strictly the vendor driver must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Policy {
    /// The same driver, module version and srcversion
    Exact,
    /// The same driver and module version
    Version,
    /// The same driver, any version
    Driver,
}

/// Migration commands.
#[derive(Subcommand, Debug)]
pub enum MigrateCmd {
    /// Print the JSON spec a destination must recreate for a device: an mdev (type, attributes, parent ids, driver build, migration flags), an NVIDIA vGPU VF (type name, card, driver build) or a vDPA device (creation config, class, limits)
    Export {
        /// The source mdev's UUID, vGPU VF's PCI address, or vDPA device's name
        device: String,
    },
    /// Judge a destination against a source's spec; exit 0 compatible, 3 compatible with changes, 4 incompatible
    #[command(group(clap::ArgGroup::new("destination").args(["device", "mgmtdev"])))]
    Check {
        /// The spec file (`-` for standard input)
        spec: String,
        /// The destination device: an mdev's UUID (an mdev spec) or a VF's PCI address (a vGPU spec). Without it: for an mdev, what this host could create (a type probe on the parent prepare would choose); for a vGPU, every card's free VFs
        #[arg(long)]
        device: Option<String>,
        /// The destination vDPA management device (a vDPA spec): a device is made with the spec's config and removed again
        #[arg(long)]
        mgmtdev: Option<String>,
        /// How strictly the vendor driver must match
        #[arg(long, value_enum, default_value = "exact")]
        driver_policy: Policy,
    },
    /// Make (transient) the device a spec describes where there is room (an mdev on a parent, a vGPU type on a free VF, a vDPA device on its management device), and print its libvirt element (-o libvirt: the element alone)
    Prepare {
        /// The spec file (`-` for standard input)
        spec: String,
        /// The UUID to give an mdev (the source's keeps the domain XML); new when absent
        #[arg(long)]
        uuid: Option<Uuid>,
        /// Say what would be made; make nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Say what this host would do for a domain arriving by migration (a dry run of the libvirt hook's `migrate begin`): the device each of its pool devices would get here, judged against the source's spec in hostdev's metadata; makes nothing
    Domain {
        /// The domain's XML as the source has it (`virsh dumpxml --migratable`; `-` for standard input)
        xml: String,
    },
}

fn read_spec(path: &str) -> Result<MigrationSpec> {
    let bytes = crate::input::read(std::path::Path::new(path), "the migration spec")?;
    serde_json::from_slice(&bytes).with_context(|| {
        format!("{path} is not a hostdev migration spec (`hostdevctl migrate export` writes one)")
    })
}

/// Runs a migrate command.
pub fn run<D: Serve>(ctx: &Ctx<D>, cmd: MigrateCmd, f: Format) -> Result<ExitCode> {
    match cmd {
        MigrateCmd::Export { device } => {
            let device = match crate::probe::target(&device) {
                Ok(ProbeTarget::Mdev(u)) => ExportTarget::Mdev(u),
                Ok(ProbeTarget::Pci(a)) => ExportTarget::Vgpu(a),
                Err(_) => ExportTarget::Vdpa(device.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "'{}' is neither an mdev UUID, a VF's PCI address nor a vDPA device name",
                        device.escape_debug()
                    )
                })?),
            };
            let spec = ctx.call(&MigrateExportRequest { device })?;
            emit(&(serde_json::to_string_pretty(&spec)? + "\n"))?;
            Ok(ExitCode::SUCCESS)
        }
        MigrateCmd::Check {
            spec,
            device,
            mgmtdev,
            driver_policy,
        } => {
            let mgmtdev = mgmtdev
                .map(|m| hostdev_model::vdpa::MgmtDevName::parse(&m))
                .transpose()?;
            let device = device
                .map(|d| crate::probe::target(&d).context("--device"))
                .transpose()?;
            let spec = read_spec(&spec)?;
            let driver_policy = match driver_policy {
                Policy::Exact => DriverPolicy::Exact,
                Policy::Version => DriverPolicy::Version,
                Policy::Driver => DriverPolicy::Driver,
            };
            let r = ctx.call(&MigrateCheckRequest {
                spec,
                device,
                mgmtdev,
                driver_policy,
            })?;
            if f == Format::Json {
                emit(&(serde_json::to_string_pretty(&r)? + "\n"))?;
            } else {
                let rows: Vec<Vec<String>> = r
                    .reasons
                    .iter()
                    .map(|x| {
                        vec![
                            x.rule.clone(),
                            x.verdict.as_str().to_string(),
                            x.source.clone(),
                            x.destination.clone(),
                            x.why.clone(),
                        ]
                    })
                    .collect();
                let mut out = format!("verdict: {}\n\n", r.verdict.as_str());
                out.push_str(&table(
                    &["RULE", "VERDICT", "SOURCE", "DESTINATION", "WHY"],
                    &rows,
                ));
                emit(&out)?;
            }
            Ok(ExitCode::from(match r.verdict {
                Verdict::Compatible => 0,
                Verdict::CompatibleWithChanges => 3,
                Verdict::Incompatible => 4,
            }))
        }
        MigrateCmd::Prepare {
            spec,
            uuid,
            dry_run,
        } => {
            let spec = read_spec(&spec)?;
            let p = ctx.call(&MigratePrepareRequest {
                spec,
                uuid,
                dry_run,
            })?;
            match f {
                Format::Json => emit(&(serde_json::to_string_pretty(&p)? + "\n"))?,
                Format::Libvirt => emit(&p.libvirt)?,
                Format::Table => emit(&format!(
                    "{} {} ({}on {})\n{}",
                    if p.created { "made" } else { "would make" },
                    p.id,
                    p.type_id
                        .as_deref()
                        .map(|t| format!("{t} "))
                        .unwrap_or_default(),
                    p.parent,
                    p.libvirt
                ))?,
            }
            Ok(ExitCode::SUCCESS)
        }
        MigrateCmd::Domain { xml } => {
            let xml = crate::input::read_text(std::path::Path::new(&xml), "the domain XML")?;
            let m = crate::pool::hook_migrate(ctx, &xml, true)?;
            if f == Format::Json {
                emit(&(serde_json::to_string_pretty(&m.answer)? + "\n"))?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = m
                .answer
                .devices
                .iter()
                .map(|a| {
                    vec![
                        a.pool.to_string(),
                        a.kind.to_string(),
                        a.from.clone(),
                        if a.to.is_empty() {
                            "(a free device)".into()
                        } else {
                            a.to.clone()
                        },
                        a.verdict.as_str().to_string(),
                    ]
                })
                .collect();
            if rows.is_empty() {
                emit("the domain holds no hostdev pool device: it migrates as it is\n")?;
            } else {
                emit(&table(
                    &["POOL", "KIND", "SOURCE", "HERE", "VERDICT"],
                    &rows,
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
