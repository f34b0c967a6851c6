//! `hostdev-testkit gen DIR [--seed N] [--parents N] [--types N] [--devices N] [--definitions N]`
//! writes a generated host tree for benchmarks and manual tries; `fixed DIR`
//! writes the small tree of the golden tests.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(cmd), Some(dir)) = (args.first(), args.get(1)) else {
        eprintln!("usage: hostdev-testkit gen|fixed DIR [--seed N] [--parents N] [--types N] [--devices N] [--definitions N]");
        return ExitCode::from(2);
    };
    let opt = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let spec = match cmd.as_str() {
        "gen" => hostdev_testkit::generate(
            opt("--seed", 1) as u64,
            opt("--parents", 16),
            opt("--types", 32),
            opt("--devices", 2000),
            opt("--definitions", 5000),
        ),
        "fixed" => hostdev_testkit::fixed(),
        _ => {
            eprintln!("hostdev-testkit: unknown command {cmd}");
            return ExitCode::from(2);
        }
    };
    match hostdev_testkit::write_tree(&PathBuf::from(dir), &spec) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hostdev-testkit: cannot write {dir}: {e}");
            ExitCode::FAILURE
        }
    }
}
