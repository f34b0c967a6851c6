//! Who may do what, from the connecting process's credentials as the kernel
//! reports them (SO_PEERCRED), never from anything the client says: root may
//! do everything, members of the configured group may read, anyone else is
//! refused. Owns: the peer's role. Must not: trust request content.

use std::path::Path;

/// The connecting process, as the kernel saw it at `connect()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Process id (for the log; 0 if unknown).
    pub pid: i32,
}

/// What a peer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Nothing.
    Stranger,
    /// Reads: lists, types, events, metrics.
    Reader,
    /// Everything.
    Root,
}

/// The gid of `name` in `/etc/group` (under `etc`), if the group exists.
pub fn group_gid(etc: &Path, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(etc.join("group")).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let (n, _, gid) = (f.next()?, f.next()?, f.next()?);
        (n == name).then(|| gid.parse().ok()).flatten()
    })
}

/// The supplementary groups of a live process (`/proc/PID/status`, `Groups:`).
fn supplementary_groups(pid: i32) -> Vec<u32> {
    if pid <= 0 {
        return Vec::new();
    }
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Groups:")).map(|g| {
                g.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// The role of `peer` given the readers' group id.
pub fn role(peer: &Peer, readers: Option<u32>) -> Role {
    if peer.uid == 0 {
        return Role::Root;
    }
    match readers {
        Some(g) if peer.gid == g || supplementary_groups(peer.pid).contains(&g) => Role::Reader,
        _ => Role::Stranger,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_uid_and_groups() {
        let me = std::process::id() as i32;
        let root = Peer {
            uid: 0,
            gid: 0,
            pid: me,
        };
        assert_eq!(role(&root, None), Role::Root);
        let member = Peer {
            uid: 1000,
            gid: 4242,
            pid: 0,
        };
        assert_eq!(role(&member, Some(4242)), Role::Reader);
        assert_eq!(role(&member, Some(7)), Role::Stranger);
        assert_eq!(role(&member, None), Role::Stranger);
    }

    #[test]
    fn groups_are_found_by_name() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("group"),
            "root:x:0:\nhostdev:x:991:alice\nbad\n",
        )
        .unwrap();
        assert_eq!(group_gid(d.path(), "hostdev"), Some(991));
        assert_eq!(group_gid(d.path(), "nosuch"), None);
    }
}
