//! `hostdevctl`: the command line of hostdev. Invoked as `mdevctl` or `lsmdev`
//! (a symlink or copy under that name) it is a drop-in mdevctl.

use hostdevctl::{mdevctl, native};
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
