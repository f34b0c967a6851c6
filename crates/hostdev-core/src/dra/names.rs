//! Names Kubernetes can carry for what hostdev publishes: device, counter
//! set, counter and compatibility-group names are DNS labels (at most 63
//! lower-case letters, digits and `-`); attribute strings at most 64 bytes.
//! A parent like `0000:3b:00.0` or a type like `i915-GVTg_V5_4` is made
//! readable (`0000-3b-00-0`, `i915-gvtg-v5-4`) and a short hash of the exact
//! original keeps two originals that read alike apart.
//!
//! Owns: those mappings. Must not: decide what is published.

/// FNV-1a, 32 bits: stable across releases and machines (a device's name
/// must not change when hostdevd is upgraded while a claim holds it).
fn fnv(parts: &[&str]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff; // a byte no UTF-8 text holds
            h = h.wrapping_mul(0x0100_0193);
        }
        for b in p.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// `s` lower-cased, every run of other characters one `-`, trimmed.
fn readable(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// A DNS label of `prefix` parts, a 6-hex hash of them, and `suffix`: the
/// readable parts are cut so the whole fits 63 characters.
pub(crate) fn label(parts: &[&str], suffix: &str) -> String {
    let hash = format!("{:06x}", fnv(parts) & 0x00ff_ffff);
    let tail = if suffix.is_empty() {
        hash
    } else {
        format!("{hash}-{suffix}")
    };
    let room = 63usize.saturating_sub(tail.len() + 1);
    let mut head = parts
        .iter()
        .map(|p| readable(p))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    head.truncate(room);
    while head.ends_with('-') {
        head.pop();
    }
    if head.is_empty() || !head.as_bytes()[0].is_ascii_alphanumeric() {
        format!("d{}", &tail)
    } else {
        format!("{head}-{tail}")
    }
}

/// Whether `name` may be a [`label`] whose first part is `first` (never
/// `false` for one that is; sometimes `true` for one that is not): a label's
/// head starts with its first readable part, cut no shorter than 32
/// characters (the tail takes at most 6 + 1 + a 20-digit suffix + 1 of 63).
pub(crate) fn may_lead(name: &str, first: &str) -> bool {
    let r = readable(first);
    r.is_empty() || name.starts_with(&r[..r.len().min(32)])
}

/// An attribute string cut to Kubernetes' 64 bytes (at a character boundary).
pub(crate) fn attr_string(s: &str) -> String {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostdev_api::dra::is_dns_label;

    #[test]
    fn labels_are_dns_labels_and_keep_alike_originals_apart() {
        let a = label(&["0000:3b:00.0", "nvidia-222"], "0");
        assert!(a.starts_with("0000-3b-00-0-nvidia-222-"), "{a}");
        assert!(a.ends_with("-0"));
        let b = label(&["i915-GVTg_V5_4"], "");
        let c = label(&["i915-gvtg-v5-4"], "");
        assert_ne!(b, c);
        for s in [
            a,
            b,
            c,
            label(&[&"x".repeat(500), "y"], "31"),
            label(&["::", "__"], "1"),
            label(&["-A-"], ""),
        ] {
            assert!(is_dns_label(&s), "{s}");
        }
        // Parts are separated: ("ab","c") is not ("a","bc").
        assert_ne!(label(&["ab", "c"], ""), label(&["a", "bc"], ""));
    }

    #[test]
    fn a_label_is_led_by_its_first_part() {
        let firsts = [
            "0000:3b:00.0",
            "0000:3b:00.4",
            "i915-GVTg_V5_4",
            "::",
            "",
            &"long-parent-".repeat(10),
            "matrix",
        ];
        for f in firsts {
            for t in ["nvidia-256", "GRID T4-8Q", "", "__"] {
                for suffix in ["", "0", "31", "18446744073709551615"] {
                    let l = label(&[f, t], suffix);
                    assert!(may_lead(&l, f), "{l} from {f:?}");
                }
            }
        }
        let l = label(&["0000:10:00.0", "nvidia-256"], "0");
        assert!(!may_lead(&l, "0000:11:00.0"));
        assert!(!may_lead(&l, "matrix"));
    }

    #[test]
    fn attribute_strings_are_cut_at_a_character() {
        assert_eq!(attr_string(&"é".repeat(40)).len(), 64);
        assert_eq!(attr_string("short"), "short");
    }
}
