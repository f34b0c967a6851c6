//! A program that only calls hostdevd: lists every device of every kind the
//! daemon manages, one line each, and says what went wrong by class.
//! It links `hostdev-api` with the `client` feature and nothing of the host
//! code (a test holds `cargo tree` to that).
//!
//!     cargo run -p hostdev-api --features client --example devices [SOCKET]

use hostdev_api::client::{Daemon, DEFAULT_SOCKET};
use hostdev_api::{ErrorClass, InventoryQuery};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let socket = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let Some(daemon) = Daemon::connect(&socket) else {
        eprintln!("no hostdevd answers at {}", socket.display());
        return ExitCode::from(3);
    };
    match daemon.call(&InventoryQuery {}, Duration::from_secs(30)) {
        Ok(inv) => {
            for d in &inv.devices {
                let ty = d.type_.as_ref().map(|t| t.to_string()).unwrap_or_default();
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    d.kind,
                    d.id,
                    d.parent,
                    ty,
                    d.state.as_str()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{} ({}, {}): {e}", e.code(), e.class(), e.class().status());
            match e.class() {
                ErrorClass::Forbidden => ExitCode::from(4),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
