//! Pure model of hostdev: validated names, mediated-device definitions and the
//! exact JSON/text formats mdevctl uses.
//!
//! This crate owns the rules that decide whether a string may become a path
//! component and how a definition looks on disk and on the wire. It must not do
//! any I/O: no file, socket or process access belongs here.
#![deny(missing_docs)]

pub mod config;
pub mod format;
pub mod host;
pub mod libvirt;
pub mod migrate;
pub mod names;
pub mod pci;
pub mod pool;
pub mod probe;
pub mod quote;
mod schema;
pub mod vdpa;
pub mod vgpu;
pub mod vgpu_dm;

pub use config::{Attr, MdevConfig, StartPolicy};
pub use names::{AttrName, NameError, ParentName, TypeId, Uuid};
