//! Test and benchmark support for hostdev.
//!
//! Owns: writing sysfs-shaped trees and `/etc/mdevctl.d` trees from a
//! [`TreeSpec`] (fixed or generated from a seed), and running the peer
//! (Debian's `mdevctl`) against such a tree in a private mount namespace.
//! Must not: be used by production code; nothing here is a kernel interface.
#![deny(missing_docs)]

pub mod conformance;

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One type of a parent.
#[derive(Debug, Clone)]
pub struct TypeSpec {
    /// Type id.
    pub id: String,
    /// `available_instances`.
    pub available: u32,
    /// `device_api`.
    pub device_api: String,
    /// `name` file, if any.
    pub name: Option<String>,
    /// `description` file, if any.
    pub description: Option<String>,
}

/// One parent device.
#[derive(Debug, Clone)]
pub struct ParentSpec {
    /// Its name (link name under /sys/class/mdev_bus).
    pub name: String,
    /// Directory under /sys/devices holding it (e.g. `pci0000:00` or `virtual`).
    pub bus_dir: String,
    /// Its types.
    pub types: Vec<TypeSpec>,
}

/// A whole host: parents, running devices, definitions.
#[derive(Debug, Clone, Default)]
pub struct TreeSpec {
    /// Parents.
    pub parents: Vec<ParentSpec>,
    /// Running devices: (uuid, parent, type).
    pub devices: Vec<(String, String, String)>,
    /// Definition files: (parent, uuid, bytes).
    pub definitions: Vec<(String, String, String)>,
}

/// A small deterministic generator (xorshift64*), so trees are reproducible from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// A random UUID string (version 4 layout).
    pub fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }
}

/// A definition file's bytes as mdevctl writes them.
pub fn definition_json(mdev_type: &str, auto: bool, attrs: &[(String, String)]) -> String {
    let attrs: Vec<String> = attrs
        .iter()
        .map(|(k, v)| format!("    {{\n      \"{k}\": \"{v}\"\n    }}"))
        .collect();
    let attrs = if attrs.is_empty() {
        "[]".to_string()
    } else {
        format!("[\n{}\n  ]", attrs.join(",\n"))
    };
    format!(
        "{{\n  \"mdev_type\": \"{mdev_type}\",\n  \"start\": \"{}\",\n  \"attrs\": {attrs}\n}}",
        if auto { "auto" } else { "manual" }
    )
}

/// A generated host: `parents` PCI parents × `types` types, `devices` running
/// devices and `definitions` definitions (some of them of running devices).
pub fn generate(
    seed: u64,
    parents: usize,
    types: usize,
    devices: usize,
    definitions: usize,
) -> TreeSpec {
    let mut rng = Rng::new(seed);
    let mut spec = TreeSpec::default();
    for p in 0..parents {
        let name = format!("0000:{:02x}:00.0", 0x10 + p);
        let types = (0..types)
            .map(|t| TypeSpec {
                id: format!("nvidia-{}", 256 + t),
                available: rng.below(40) as u32,
                device_api: "vfio-pci".into(),
                name: Some(format!("GRID T4-{}Q", 1 << (t % 5))),
                description: if t % 3 == 0 {
                    None
                } else {
                    Some(format!("num_heads={}, frl_config=60, framebuffer={}M, max_resolution=4096x2160, max_instance={}\n", 1 + t % 4, 1024 * (1 + t % 8), 1 + t))
                },
            })
            .collect();
        spec.parents.push(ParentSpec {
            name,
            bus_dir: "pci0000:00".into(),
            types,
        });
    }
    let pick = |rng: &mut Rng, spec: &TreeSpec| {
        let p = &spec.parents[rng.below(spec.parents.len() as u64) as usize];
        let t = &p.types[rng.below(p.types.len() as u64) as usize];
        (p.name.clone(), t.id.clone())
    };
    for _ in 0..devices {
        let (p, t) = pick(&mut rng, &spec);
        spec.devices.push((rng.uuid(), p, t));
    }
    for i in 0..definitions {
        // Every fourth definition describes a running device (same parent and type).
        let (u, p, t) = if i % 4 == 0 && i / 4 < spec.devices.len() {
            spec.devices[i / 4].clone()
        } else {
            let (p, t) = pick(&mut rng, &spec);
            (rng.uuid(), p, t)
        };
        let n_attrs = rng.below(3) as usize;
        let attrs: Vec<(String, String)> = (0..n_attrs)
            .map(|a| (format!("attr_{a}"), format!("value {}", rng.below(1000))))
            .collect();
        let auto = rng.below(2) == 0;
        spec.definitions
            .push((p, u, definition_json(&t, auto, &attrs)));
    }
    spec
}

/// The small fixed host used by golden tests: mtty-like, mdpy-like and a GVT-g-like PCI parent.
pub fn fixed() -> TreeSpec {
    let t = |id: &str, avail, name: Option<&str>, desc: Option<&str>| TypeSpec {
        id: id.into(),
        available: avail,
        device_api: "vfio-pci".into(),
        name: name.map(Into::into),
        description: desc.map(Into::into),
    };
    TreeSpec {
        parents: vec![
            ParentSpec {
                name: "0000:00:02.0".into(),
                bus_dir: "pci0000:00".into(),
                types: vec![
                    t("i915-GVTg_V5_4", 2, Some("GVTg_V5_4"), Some("low_gm_size: 128MB\nhigh_gm_size: 512MB\nfence: 4\nresolution: 1920x1200\nweight: 4\n")),
                    t("i915-GVTg_V5_8", 4, Some("GVTg_V5_8"), Some("low_gm_size: 64MB\nhigh_gm_size: 384MB\nfence: 4\nresolution: 1024x768\nweight: 2\n")),
                ],
            },
            ParentSpec {
                name: "mdpy".into(),
                bus_dir: "virtual/mdpy".into(),
                types: vec![
                    t("mdpy-hd", 3, Some("mdpy-hd"), Some("virtual display, 1920x1080 framebuffer\n")),
                    t("mdpy-vga", 4, Some("mdpy-vga"), Some("virtual display, 640x480 framebuffer\n")),
                ],
            },
            ParentSpec {
                name: "mtty".into(),
                bus_dir: "virtual/mtty".into(),
                types: vec![t("mtty-1", 23, Some("Single port serial"), None), t("mtty-2", 12, Some("Dual port serial"), None)],
            },
        ],
        devices: vec![
            ("83b8f4f2-509f-382f-3c1e-e6bfe0fa1001".into(), "mtty".into(), "mtty-1".into()),
            ("b1a3c7a4-9b8e-4f0e-8d52-0c6e4c0d2a01".into(), "mdpy".into(), "mdpy-hd".into()),
            ("5269fe7a-18d1-48ad-88e1-3fda4176f536".into(), "0000:00:02.0".into(), "i915-GVTg_V5_4".into()),
        ],
        definitions: vec![
            ("mtty".into(), "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001".into(), definition_json("mtty-1", true, &[("foo".into(), "bar".into()), ("baz".into(), "quux".into())])),
            ("mtty".into(), "83b8f4f2-509f-382f-3c1e-e6bfe0fa1002".into(), definition_json("mtty-2", false, &[])),
            ("0000:00:02.0".into(), "83b8f4f2-509f-382f-3c1e-e6bfe0fa1002".into(), definition_json("i915-GVTg_V5_8", true, &[])),
            ("0000:00:02.0".into(), "c07ab7b2-8aa2-427a-91c6-ffc949bb77f9".into(), definition_json("i915-GVTg_V5_4", false, &[("weight".into(), "4".into())])),
        ],
    }
}

fn write(path: &Path, s: &str) -> io::Result<()> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d)?;
    }
    fs::write(path, s)
}

/// Writes `spec` under `root`: `root/sys/...` shaped like the kernel's sysfs
/// (relative links, as sysfs has) and `root/etc/mdevctl.d/...`.
pub fn write_tree(root: &Path, spec: &TreeSpec) -> io::Result<()> {
    let class = root.join("sys/class/mdev_bus");
    let bus = root.join("sys/bus/mdev/devices");
    fs::create_dir_all(&class)?;
    fs::create_dir_all(&bus)?;
    fs::create_dir_all(root.join("etc/mdevctl.d/scripts.d/callouts"))?;
    fs::create_dir_all(root.join("etc/mdevctl.d/scripts.d/notifiers"))?;
    for p in &spec.parents {
        let rel = format!("devices/{}/{}", p.bus_dir, p.name);
        let rel = rel.replace(&format!("{}/{}", p.name, p.name), &p.name);
        let dir = root.join("sys").join(&rel);
        for t in &p.types {
            let td = dir.join("mdev_supported_types").join(&t.id);
            fs::create_dir_all(td.join("devices"))?;
            write(
                &td.join("available_instances"),
                &format!("{}\n", t.available),
            )?;
            write(&td.join("device_api"), &format!("{}\n", t.device_api))?;
            write(&td.join("create"), "")?;
            if let Some(n) = &t.name {
                write(&td.join("name"), &format!("{n}\n"))?;
            }
            if let Some(d) = &t.description {
                write(&td.join("description"), d)?;
            }
        }
        symlink(format!("../../{rel}"), class.join(&p.name))?;
    }
    for (u, p, t) in &spec.devices {
        let ps = spec
            .parents
            .iter()
            .find(|x| &x.name == p)
            .ok_or_else(|| io::Error::other(format!("device {u} names unknown parent {p}")))?;
        let rel = format!("devices/{}/{}", ps.bus_dir, ps.name).replace(&format!("{p}/{p}"), p);
        let dd = root.join("sys").join(&rel).join(u);
        fs::create_dir_all(&dd)?;
        symlink(format!("../mdev_supported_types/{t}"), dd.join("mdev_type"))?;
        write(&dd.join("remove"), "")?;
        symlink(format!("../../../{rel}/{u}"), bus.join(u))?;
        symlink(
            format!("../../../../{rel}/{u}"),
            root.join("sys")
                .join(&rel)
                .join("mdev_supported_types")
                .join(t)
                .join("devices")
                .join(u),
        )?;
    }
    for (p, u, body) in &spec.definitions {
        write(&root.join("etc/mdevctl.d").join(p).join(u), body)?;
    }
    Ok(())
}

/// Where Debian's mdevctl is, if installed.
pub fn peer_mdevctl() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/mdevctl");
    p.exists().then_some(p)
}

/// Whether this process may make a private mount namespace (root with `unshare`).
pub fn can_unshare() -> bool {
    Command::new("unshare")
        .args(["-m", "true"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs `argv` with `root/sys` bound over `/sys` and `root/etc/mdevctl.d` over
/// `/etc/mdevctl.d` in a private mount namespace: how the peer, which has no
/// root prefix, is pointed at a generated tree.
pub fn run_in_tree(root: &Path, argv: &[&str], stdin: Option<&[u8]>) -> io::Result<Output> {
    let script =
        "mount --make-rprivate / && mount --bind \"$0/sys\" /sys && mkdir -p /etc/mdevctl.d && \
                  mount --bind \"$0/etc/mdevctl.d\" /etc/mdevctl.d && exec \"$@\"";
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c", script]).arg(root).args(argv);
    match stdin {
        None => cmd.stdin(std::process::Stdio::null()).output(),
        Some(data) => {
            use std::io::Write;
            let mut child = cmd
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()?;
            if let Some(mut i) = child.stdin.take() {
                i.write_all(data)?;
            }
            child.wait_with_output()
        }
    }
}

/// Makes a FIFO at `path`: a file that blocks a reader which does not look
/// at its type first (hostile-input tests).
pub fn mkfifo(path: &Path) -> io::Result<()> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .map_err(io::Error::from)
}

/// Every regular file under `dir` with its bytes, sorted by relative path.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                walk(base, &p, out);
            } else if ft.is_file() {
                let rel = p.strip_prefix(base).unwrap_or(&p).display().to_string();
                out.push((rel, fs::read(&p).unwrap_or_default()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
