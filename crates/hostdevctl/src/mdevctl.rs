//! The mdevctl personality: every command and option of mdevctl 1.4, with
//! byte-identical output, so that libvirt and scripts drive hostdev unmodified.

use crate::env::{self, Ctx};
use crate::native::{render_list, render_types, Format};
use crate::output::{emit, emit_json, fail, warn};
use anyhow::Result;
use clap::{Args, Parser};
use hostdev_core::api::{
    AttrEdit, MdevEdit, ModifyScope, ParentTypes, StartPolicy, StopRequest, TypesQuery,
    UndefineRequest,
};
use hostdev_core::MdevError;
use hostdev_core::{
    CoreError, DefineRequest, DeviceOutcome, ListQuery, ModifyRequest, Serve, StartRequest,
};
use hostdev_model::format::{list_json, list_text, types_json, types_text, ListKind};
use hostdev_model::MdevConfig;
use hostdev_model::{ParentName, TypeId, Uuid};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn uuid_arg(s: &str) -> Result<Uuid, String> {
    Uuid::parse_lenient(s).map_err(|e| e.to_string())
}

fn parent_arg(s: &str) -> Result<ParentName, String> {
    ParentName::new(s).map_err(|e| e.to_string())
}

fn type_arg(s: &str) -> Result<TypeId, String> {
    TypeId::new(s).map_err(|e| e.to_string())
}

/// Options of `list` (and of `lsmdev`).
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Show defined devices
    #[arg(short, long)]
    defined: bool,
    /// Output device list in json format
    #[arg(long)]
    dumpjson: bool,
    /// Print additional information about the devices
    #[arg(short, long)]
    verbose: bool,
    /// List devices matching the specified UUID
    #[arg(short, long, value_parser = uuid_arg)]
    uuid: Option<Uuid>,
    /// List devices associated with the specified Parent device
    #[arg(short, long)]
    parent: Option<String>,
}

#[derive(Parser, Debug)]
#[command(name = "lsmdev", version, about = "List mediated devices")]
struct Lsmdev {
    #[command(flatten)]
    list: ListArgs,
}

#[derive(Parser, Debug)]
#[command(
    name = "mdevctl",
    version,
    about = "A mediated device management utility for Linux (hostdev)"
)]
#[allow(missing_docs)] // clap takes doc comments as help text; mdevctl has none here
pub enum Cmd {
    /// Define a persistent mediated device
    Define {
        /// Assign UUID to the device
        #[arg(short, long, value_parser = uuid_arg, required_unless_present = "parent")]
        uuid: Option<Uuid>,
        /// Automatically start device on parent availability
        #[arg(short, long)]
        auto: bool,
        /// Specify the parent of the device
        #[arg(short, long, value_parser = parent_arg, required_unless_present = "uuid")]
        parent: Option<ParentName>,
        /// Specify the mdev type of the device
        #[arg(id = "type", short, long, value_parser = type_arg)]
        mdev_type: Option<TypeId>,
        /// Specify device details in JSON format
        #[arg(long, conflicts_with_all = ["type", "auto"])]
        jsonfile: Option<PathBuf>,
    },
    /// Undefine a persistent mediated device
    Undefine {
        /// UUID of the device to be undefined
        #[arg(short, long, value_parser = uuid_arg)]
        uuid: Uuid,
        /// Parent of the device to be undefined
        #[arg(short, long, value_parser = parent_arg)]
        parent: Option<ParentName>,
    },
    /// Modify the definition of a mediated device
    Modify {
        /// UUID of the mdev to modify
        #[arg(short, long, value_parser = uuid_arg)]
        uuid: Uuid,
        /// Parent of the mdev to modify
        #[arg(short, long, value_parser = parent_arg)]
        parent: Option<ParentName>,
        /// Modify the mdev type for this device
        #[arg(id = "type", short, long, value_parser = type_arg)]
        mdev_type: Option<TypeId>,
        /// add a new attribute
        #[arg(
            long,
            value_name = "attr_name",
            conflicts_with = "delattr",
            requires = "value"
        )]
        addattr: Option<String>,
        /// Delete an attribute
        #[arg(long)]
        delattr: bool,
        /// Index of the attribute to modify
        #[arg(short, long)]
        index: Option<u32>,
        /// Value for the attribute specified by --addattr
        #[arg(long, value_name = "attr_value")]
        value: Option<String>,
        /// Device will be started automatically
        #[arg(short, long)]
        auto: bool,
        /// Device must be started manually
        #[arg(short, long, conflicts_with = "auto")]
        manual: bool,
        /// Specify device details in JSON format
        #[arg(long, conflicts_with_all = ["type", "addattr", "delattr", "index", "value", "auto", "manual"])]
        jsonfile: Option<PathBuf>,
        /// Modify the running device
        #[arg(long)]
        live: bool,
        /// Modify the definition (the default unless --live)
        #[arg(long)]
        defined: bool,
        /// Go on even if a callout script refuses
        #[arg(short, long)]
        force: bool,
    },
    /// Start a mediated device
    Start {
        /// UUID of the device to start
        #[arg(short, long, value_parser = uuid_arg, required_unless_present = "parent")]
        uuid: Option<Uuid>,
        /// Parent of the device to start
        #[arg(short, long, value_parser = parent_arg, required_unless_present = "uuid")]
        parent: Option<ParentName>,
        /// Mdev type of the device to start
        #[arg(id = "type", short, long, value_parser = type_arg)]
        mdev_type: Option<TypeId>,
        /// Details of the device to be started, in JSON format
        #[arg(long, conflicts_with = "type")]
        jsonfile: Option<PathBuf>,
    },
    /// Stop a mediated device
    Stop {
        /// UUID of the device to stop
        #[arg(short, long, value_parser = uuid_arg)]
        uuid: Uuid,
    },
    /// List mediated devices
    List(ListArgs),
    /// List available mediated device types
    Types {
        /// Show supported types for the specified parent
        #[arg(short, long)]
        parent: Option<String>,
        /// Output mdev types list in JSON format
        #[arg(long)]
        dumpjson: bool,
    },
    /// Start every auto-start device of a parent (run by the udev rule)
    #[command(hide = true)]
    StartParentMdevs {
        /// The parent
        parent: String,
    },
}

/// Reads and parses a `--jsonfile` argument (a path, `/dev/stdin` or `-`):
/// the definition travels to the core in its typed form.
pub fn read_config(path: &Path) -> Result<MdevConfig> {
    let bytes = crate::input::read(path, "JSON file")?;
    Ok(MdevConfig::from_json(&bytes).map_err(|source| {
        CoreError::from(MdevError::BadJson {
            path: path.to_path_buf(),
            source,
        })
    })?)
}

/// `lsmdev`'s command line (for man pages and completions).
pub fn lsmdev_command() -> clap::Command {
    <Lsmdev as clap::CommandFactory>::command()
}

/// Runs the mdevctl personality (`lsmdev` = `list`).
pub fn main(args: Vec<OsString>, lsmdev: bool) -> ExitCode {
    crate::output::set_style(true, false);
    let cmd = if lsmdev {
        match Lsmdev::try_parse_from(args) {
            Ok(l) => Cmd::List(l.list),
            Err(e) => e.exit(),
        }
    } else {
        match Cmd::try_parse_from(args) {
            Ok(c) => c,
            Err(e) => e.exit(),
        }
    };
    match run(&env::Ctx::real(true), cmd, None) {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

/// `{"kind": "mdev", "id", "action"}` for `-o json`.
fn mdev_done(uuid: &Uuid, action: &str) -> serde_json::Value {
    serde_json::json!({"kind": "mdev", "id": uuid.to_string(), "action": action})
}

/// Type names by (parent, type id), for listings that show a type as an object.
fn type_names(t: Vec<ParentTypes>) -> std::collections::HashMap<(String, String), String> {
    t.into_iter()
        .map(|pt| (pt.parent, pt.types))
        .flat_map(|(p, ts)| {
            ts.into_iter().filter_map(move |t| {
                let name = t.name?.trim().to_string();
                Some(((p.to_string(), t.type_id.to_string()), name))
            })
        })
        .collect()
}

/// Runs one command; `native` = Some(format) renders list/types as hostdev's
/// own tables or JSON instead of mdevctl's formats.
pub fn run<D: Serve>(ctx: &Ctx<D>, cmd: Cmd, native: Option<Format>) -> Result<ExitCode> {
    let mdevctl = native.is_none();
    match cmd {
        Cmd::List(a) => {
            let listing = ctx.call(&ListQuery {
                defined: a.defined,
                uuid: a.uuid,
                parent: a.parent,
            })?;
            for p in &listing.problems {
                warn(p);
            }
            let kind = if a.defined {
                ListKind::Defined
            } else {
                ListKind::Active
            };
            let s = if let Some(f) = native {
                let f = if a.dumpjson { Format::Json } else { f };
                let names = if f == Format::Json {
                    type_names(ctx.call(&TypesQuery { parent: None })?)
                } else {
                    Default::default()
                };
                render_list(&listing.entries, f, a.verbose, &names)
            } else if a.dumpjson {
                list_json(&listing.entries, a.uuid.is_some())
            } else {
                list_text(&listing.entries, kind, a.verbose)
            };
            emit(&s)?;
        }
        Cmd::Types { parent, dumpjson } => {
            let t: Vec<_> = ctx
                .call(&TypesQuery { parent })?
                .into_iter()
                .map(|pt| (pt.parent, pt.types))
                .collect();
            emit(&match native {
                Some(f) => render_types(&t, if dumpjson { Format::Json } else { f }),
                None if dumpjson => types_json(&t),
                None => types_text(&t),
            })?;
        }
        Cmd::Define {
            uuid,
            auto,
            parent,
            mdev_type,
            jsonfile,
        } => {
            let config = jsonfile.as_deref().map(read_config).transpose()?;
            let r = ctx.call(&DefineRequest {
                uuid,
                parent,
                mdev_type,
                start: StartPolicy::from_auto(auto),
                config,
            })?;
            // mdevctl's define is silent: notes are hostdevctl's.
            if native.is_some() {
                for n in &r.notes {
                    warn(n);
                }
            }
            if native == Some(Format::Json) {
                emit_json(&mdev_done(&r.uuid, "defined"))?;
            } else if r.generated {
                emit(&format!("{}\n", r.uuid))?;
            }
        }
        Cmd::Undefine { uuid, parent } => {
            ctx.call(&UndefineRequest { uuid, parent })?;
            if native == Some(Format::Json) {
                emit_json(&mdev_done(&uuid, "undefined"))?;
            }
        }
        Cmd::Modify {
            uuid,
            parent,
            mdev_type,
            addattr,
            delattr,
            index,
            value,
            auto,
            manual,
            jsonfile,
            live,
            defined,
            force,
        } => {
            let config = jsonfile.as_deref().map(read_config).transpose()?;
            // mdevctl's flag bags, translated into the core's typed edit.
            let index = index.map(|i| i as usize);
            let attr = match (addattr, delattr) {
                (Some(name), _) => Some(AttrEdit::Add {
                    index,
                    name,
                    value: value.unwrap_or_default(),
                }),
                (None, true) => Some(AttrEdit::Delete { index }),
                (None, false) => None,
            };
            let start = match (auto, manual) {
                (true, _) => Some(StartPolicy::Auto),
                (_, true) => Some(StartPolicy::Manual),
                _ => None,
            };
            let scope = match (live, defined) {
                (true, true) => ModifyScope::Both,
                (true, false) => ModifyScope::Live,
                (false, _) => ModifyScope::Defined,
            };
            ctx.call(&ModifyRequest {
                uuid,
                parent,
                edit: MdevEdit {
                    replace: config,
                    mdev_type,
                    attr,
                    start,
                },
                scope,
                force,
            })?;
            if native == Some(Format::Json) {
                emit_json(&mdev_done(&uuid, "modified"))?;
            }
        }
        Cmd::Start {
            uuid,
            parent,
            mdev_type,
            jsonfile,
        } => {
            let config = jsonfile.as_deref().map(read_config).transpose()?;
            let r = ctx.call(&StartRequest {
                uuid,
                parent,
                mdev_type,
                config,
            })?;
            if native == Some(Format::Json) {
                emit_json(&mdev_done(&r.uuid, "started"))?;
            } else if r.generated {
                emit(&format!("{}\n", r.uuid))?;
            }
        }
        Cmd::Stop { uuid } => {
            ctx.call(&StopRequest { uuid })?;
            if native == Some(Format::Json) {
                emit_json(&mdev_done(&uuid, "stopped"))?;
            }
        }
        Cmd::StartParentMdevs { parent } => {
            let parent = ParentName::new(parent)?;
            // Run by the udev rule: always direct (the daemon, if any, reacts
            // to the same uevent; both go through the host lock).
            let report = env::system(mdevctl).mdev.start_parent_mdevs(&parent)?;
            for p in &report.problems {
                warn(p);
            }
            for (p, u, o) in &report.devices {
                if let DeviceOutcome::Failed(e) = o {
                    crate::output::error_line(
                        e.code(),
                        &format!("failed to start {u} on {p}: {}", e.chain()),
                    );
                }
            }
            if report.failed() > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
