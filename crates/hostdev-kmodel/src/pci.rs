//! PCI addresses and routing ids, and where the kernel puts a PF's VFs.
//!
//! Owns: `dddd:bb:dd.f` text and the SR-IOV capability's arithmetic. Must
//! not: know which functions exist.

/// (domain, routing id) of `dddd:bb:dd.f`, if it is one (lower-case hex, as
/// sysfs names them).
pub fn parse(addr: &str) -> Option<(u32, u32)> {
    let b = addr.as_bytes();
    if addr.len() != 12 || b[4] != b':' || b[7] != b':' || b[10] != b'.' {
        return None;
    }
    let hex = |s: &str| {
        s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
            .then(|| u32::from_str_radix(s, 16).ok())
            .flatten()
    };
    let domain = hex(&addr[0..4])?;
    let bus = hex(&addr[5..7])?;
    let dev = hex(&addr[8..10])?;
    let func = hex(&addr[11..12])?;
    (dev < 32 && func < 8).then_some((domain, bus << 8 | dev << 3 | func))
}

/// `dddd:bb:dd.f` of a routing id in a domain.
pub fn format(domain: u32, rid: u32) -> String {
    format!(
        "{domain:04x}:{:02x}:{:02x}.{}",
        rid >> 8,
        (rid >> 3) & 0x1f,
        rid & 7
    )
}

/// The address of VF `i` (from 0) of the PF at `pf`: the PF's routing id
/// plus First VF Offset plus `i` times VF Stride, carrying into the bus
/// number as the kernel's `pci_iov_virtfn_bus`/`devfn` do; `None` past bus
/// 255 or for a PF address that is not one.
pub fn vf_address(pf: &str, offset: u32, stride: u32, i: u32) -> Option<String> {
    let (domain, rid) = parse(pf)?;
    let vf = rid
        .checked_add(offset)?
        .checked_add(i.checked_mul(stride)?)?;
    (vf <= 0xffff).then(|| format(domain, vf))
}

/// Which VF (from 0) of the PF at `pf` the function at `vf` is, by the
/// same arithmetic as [`vf_address`] run backwards; `None` when it is none
/// of them (another domain, before the first VF, between strides).
pub fn vf_index(pf: &str, offset: u32, stride: u32, vf: &str) -> Option<u32> {
    let (pd, prid) = parse(pf)?;
    let (vd, vrid) = parse(vf)?;
    if pd != vd {
        return None;
    }
    let d = vrid.checked_sub(prid.checked_add(offset)?)?;
    match stride {
        0 => (d == 0).then_some(0),
        s => (d % s == 0).then_some(d / s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vf_index_is_the_address_arithmetic_backwards() {
        for (pf, offset, stride) in [
            ("0000:01:00.0", 0x80, 2),
            ("0000:41:00.0", 4, 1),
            ("0001:fe:00.0", 0x180, 4),
        ] {
            for i in 0..300 {
                if let Some(a) = vf_address(pf, offset, stride, i) {
                    assert_eq!(vf_index(pf, offset, stride, &a), Some(i), "{pf} {a}");
                }
            }
        }
        assert_eq!(
            vf_index("0000:01:00.0", 0x80, 2, "0000:01:10.1"),
            None,
            "between strides"
        );
        assert_eq!(
            vf_index("0000:01:00.0", 0x80, 2, "0000:01:00.1"),
            None,
            "before the first"
        );
        assert_eq!(
            vf_index("0000:01:00.0", 0x80, 2, "0001:01:10.0"),
            None,
            "another domain"
        );
    }

    #[test]
    fn vfs_follow_offset_and_stride_across_buses() {
        // The lab's 82576: offset 0x80, stride 2 (docs/kernel-facts.md).
        assert_eq!(
            vf_address("0000:01:00.0", 0x80, 2, 0).as_deref(),
            Some("0000:01:10.0")
        );
        assert_eq!(
            vf_address("0000:01:00.0", 0x80, 2, 2).as_deref(),
            Some("0000:01:10.4")
        );
        // The simulator's default: functions after the PF's.
        assert_eq!(
            vf_address("0000:41:00.0", 4, 1, 5).as_deref(),
            Some("0000:41:01.1")
        );
        // Carrying into the next bus, and nothing past the last.
        assert_eq!(
            vf_address("0000:41:1f.7", 1, 1, 0).as_deref(),
            Some("0000:42:00.0")
        );
        assert_eq!(vf_address("0000:ff:1f.7", 1, 1, 0), None);
        assert_eq!(vf_address("0000:41:00.0", 4, u32::MAX, 3), None);
        assert_eq!(vf_address("0000:41:00.g", 4, 1, 0), None);
        assert_eq!(vf_address("0000:41:20.0", 4, 1, 0), None);
    }
}
