//! `hostdevctl`: the command line of hostdev, as a library so that its
//! commands can be run in process over any host (a test's fakes) as well
//! as by the binary. Invoked as `mdevctl` or `lsmdev` (a symlink or copy
//! under that name) it is a drop-in mdevctl.
//!
//! Owns: argument parsing, choosing where operations go ([`env::Ctx`]),
//! rendering, exit codes and printing the error chain once. Must not:
//! contain operation logic (that is hostdev-core's).

pub mod docs;
pub mod env;
pub mod host;
pub mod input;
pub mod mdevctl;
pub mod migrate;
pub mod native;
pub mod output;
pub mod pool;
pub mod probe;
pub mod tree;
pub mod vdpa;
pub mod vgpu;
