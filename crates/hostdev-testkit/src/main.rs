//! `hostdev-testkit hold-pools-db ROOT` holds the write lock of ROOT's pool
//! state database (one open `BEGIN IMMEDIATE` transaction), prints `held`,
//! and keeps it until its stdin closes: a stuck writer, for tests.
//! `hostdev-testkit gen DIR [--seed N] [--parents N] [--types N] [--devices N] [--definitions N]`
//! writes a generated host tree for benchmarks and manual tries; `fixed DIR`
//! writes the small tree of the golden tests.
//! `pool-load api SOCKET|cli HOSTDEVCTL POOL CLIENTS OPS [RATE]` runs
//! CLIENTS concurrent clients, each allocating and releasing OPS times, and
//! prints one line: clients, allocations/s, allocate p50/p99 ms, release
//! p50/p99 ms. Without RATE each client starts its next allocation as soon
//! as the last release answered (closed loop: the most the server gives);
//! with RATE the clients together start RATE allocations per second on a
//! fixed schedule (open loop), and an allocation's latency counts from when
//! it was due, so a server falling behind shows in the tail instead of
//! slowing the clients down.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("pool-load") {
        return pool_load(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("hold-pools-db") {
        return hold_pools_db(args.get(1).map(String::as_str).unwrap_or("/"));
    }
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

/// One HTTP/1.1 POST on a unix socket, as the CLI's client sends it.
fn post(socket: &str, path: &str, body: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut c) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: hostdev\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if c.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut out = Vec::with_capacity(4096);
    let _ = c.read_to_end(&mut out);
    out.starts_with(b"HTTP/1.1 200")
}

fn pool_load(a: &[String]) -> ExitCode {
    let (mode, target, pool, clients, ops, rate) = match a {
        [m, t, p, c, o] => (m, t, p, c, o, None),
        [m, t, p, c, o, r] => (m, t, p, c, o, Some(r)),
        _ => {
            eprintln!(
                "usage: hostdev-testkit pool-load api SOCKET|cli HOSTDEVCTL POOL CLIENTS OPS [RATE]"
            );
            return ExitCode::from(2);
        }
    };
    let (Ok(clients), Ok(ops)) = (clients.parse::<usize>(), ops.parse::<usize>()) else {
        eprintln!("hostdev-testkit: CLIENTS and OPS are numbers");
        return ExitCode::from(2);
    };
    let rate = match rate.map(|r| r.parse::<f64>()) {
        None => None,
        Some(Ok(r)) if r > 0.0 => Some(r),
        Some(_) => {
            eprintln!("hostdev-testkit: RATE is a positive number of allocations per second");
            return ExitCode::from(2);
        }
    };
    // Open loop: client t's allocation i is due at (i * clients + t) / rate.
    let due = |t: usize, i: usize| {
        rate.map(|r| std::time::Duration::from_secs_f64((i * clients + t) as f64 / r))
    };
    let cli = mode == "cli";
    let step = |verb: &str, consumer: &str| -> bool {
        if cli {
            let mut c = std::process::Command::new(target);
            c.args(["pool", verb]);
            if verb == "allocate" {
                c.arg(pool);
            }
            c.args(["--consumer", consumer])
                .stdout(std::process::Stdio::null())
                .env("HOSTDEV_SOCKET", "");
            c.status().is_ok_and(|s| s.success())
        } else if verb == "allocate" {
            post(
                target,
                "/v1/pools/allocate",
                &format!("{{\"pool\":\"{pool}\",\"consumer\":\"{consumer}\"}}"),
            )
        } else {
            post(
                target,
                "/v1/pools/release",
                &format!("{{\"consumer\":\"{consumer}\"}}"),
            )
        }
    };
    let t0 = std::time::Instant::now();
    let results: Vec<(Vec<f64>, Vec<f64>, usize)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..clients)
            .map(|t| {
                let (step, due) = (&step, &due);
                s.spawn(move || {
                    let (mut al, mut rel, mut failed) = (Vec::new(), Vec::new(), 0);
                    for i in 0..ops {
                        let c = format!("bench-{t}-{i}");
                        let a = match due(t, i) {
                            Some(d) => {
                                let at = t0 + d;
                                std::thread::sleep(
                                    at.saturating_duration_since(std::time::Instant::now()),
                                );
                                at
                            }
                            None => std::time::Instant::now(),
                        };
                        let ok = step("allocate", &c);
                        al.push(a.elapsed().as_secs_f64() * 1e3);
                        let r = std::time::Instant::now();
                        let ok2 = step("release", &c);
                        rel.push(r.elapsed().as_secs_f64() * 1e3);
                        failed += usize::from(!ok || !ok2);
                    }
                    (al, rel, failed)
                })
            })
            .collect();
        hs.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let wall = t0.elapsed().as_secs_f64();
    let mut al: Vec<f64> = results.iter().flat_map(|r| r.0.iter().copied()).collect();
    let mut rel: Vec<f64> = results.iter().flat_map(|r| r.1.iter().copied()).collect();
    let failed: usize = results.iter().map(|r| r.2).sum();
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "{clients} {:.0} {:.2} {:.2} {:.2} {:.2} {failed}",
        al.len() as f64 / wall,
        pct(&mut al, 0.50),
        pct(&mut al, 0.99),
        pct(&mut rel, 0.50),
        pct(&mut rel, 0.99)
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Holds the pool state database's write lock until stdin closes.
fn hold_pools_db(root: &str) -> ExitCode {
    use std::io::{Read, Write};
    let held = hostdev_store::PoolDb::open(std::path::Path::new(root)).and_then(|db| {
        db.write(|_tx| {
            println!("held");
            let _ = std::io::stdout().flush();
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            Ok::<_, hostdev_store::StoreError>(())
        })
    });
    match held {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hostdev-testkit: cannot hold the pool state database: {e}");
            ExitCode::FAILURE
        }
    }
}
