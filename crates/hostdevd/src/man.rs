//! `hostdevd --man`: the daemon's manual page, hostdevd(8). Synopsis and
//! options come from the clap definition that parses the command line (so
//! they cannot drift from it); what clap cannot know — files, environment,
//! signals, exit status — is written here.
//!
//! Owns: the page's text. Must not: describe an option by hand.

/// The sections after OPTIONS, in roff.
const EXTRA: &str = r#".SH FILES
.TP
\fI/etc/hostdev/hostdevd.toml\fR
The configuration (\fB\-\-config\fR chooses another). Every key is shown,
commented, in the installed copy; an unknown key is refused by name.
.TP
\fI/run/hostdev/hostdev.sock\fR
The HTTP/1.1 JSON API (mode 0660, group \fBhostdev\fR by default): root may
do everything, members of the group may read, anyone else gets 403.
\fBGET /v1/openapi.json\fR describes it.
.TP
\fI/etc/mdevctl.d\fR, \fI/etc/hostdev/vgpu.d\fR, \fI/etc/hostdev/sriov.d\fR, \fI/etc/hostdev/vdpa.d\fR
Device definitions, restored at start and when a parent, PF or vDPA
management device appears.
.TP
\fI/etc/hostdev/pools.d\fR, \fI/var/lib/hostdev/pools.db\fR
Pools and their state (reconciled every \fBpool_reconcile_secs\fR).
.TP
\fI/etc/hostdev/host.toml\fR
The host file, planned or applied every \fBhost_reconcile_secs\fR as
\fBhost_reconcile\fR says.
.SH ENVIRONMENT
.TP
\fBHOSTDEV_ROOT\fR
A root prefix every path above hangs under (default \fI/\fR), e.g. a
simulated lab of \fBhostdev\-sim\fR(1).
.TP
\fBHOSTDEV_LOG\fR
What is logged (tracing's filter syntax; default \fBinfo\fR). Under systemd
the log carries journald's level prefixes and no timestamps.
.SH SIGNALS
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop taking requests, let the operations in flight finish, and exit.
.SH EXIT STATUS
0 after a signal stopped it; 1 when it cannot start (an unusable
configuration, a socket it cannot make, a second daemon on the socket).
.SH SEE ALSO
\fBhostdevctl\fR(1), \fBhostdev\-sim\fR(1), \fBsystemd.service\fR(5)
"#;

/// The page, in roff: clap's, with [`EXTRA`] before its VERSION section.
pub fn page(cmd: clap::Command) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).section("8").render(&mut out)?;
    let text = String::from_utf8_lossy(&out);
    let at = text.find(".SH VERSION").unwrap_or(text.len());
    Ok(format!("{}{EXTRA}{}", &text[..at], &text[at..]).into_bytes())
}
