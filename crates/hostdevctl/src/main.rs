//! `hostdevctl`: the command line of hostdev. Invoked as `mdevctl` or `lsmdev`
//! (a symlink or copy under that name) it is a drop-in mdevctl.
//!
//! Owns: argument parsing, choosing the real kernel interface, rendering, exit
//! codes and printing the error chain once. Must not: contain operation logic
//! (that is hostdev-core's).

mod docs;
mod env;
mod host;
mod mdevctl;
mod migrate;
mod native;
mod output;
mod pool;
mod probe;
mod tree;
mod vdpa;
mod vgpu;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("hostdevctl")
        .to_string();
    match argv0.as_str() {
        "mdevctl" => mdevctl::main(args, false),
        "lsmdev" => mdevctl::main(args, true),
        _ => native::main(args),
    }
}
