//! `hostdev-sim man`: the simulator's manual page, hostdev-sim(1). Synopsis,
//! options and subcommands come from the clap definition that parses the
//! command line; what clap cannot know — files, signals, exit status — is
//! written here.
//!
//! Owns: the page's text. Must not: describe an option by hand.

/// The sections after the subcommands, in roff.
const EXTRA: &str = r#".SH PROFILES
A profile (TOML; unknown keys are errors) describes the simulated hardware:
mdev parents with their types and vendor rules (\fBper\-type\fR,
\fBone\-type\fR, \fBshared\-budget\fR), SR\-IOV GPUs with their VF types,
modules, latencies and faults. \fBhostdev\-sim profiles\fR lists the
built\-in ones (\fBdemo\fR, \fBlarge\fR, \fBnvidia\-sriov\fR,
\fBvfio\-ap\fR, \fBsamples\fR, \fBigb\fR); docs/simulator.md in hostdev's sources
gives the schema.
.SH FILES
.TP
\fIDIR/sys\fR
The simulated sysfs, mounted with FUSE (needs \fI/dev/fuse\fR and
\fBfusermount3\fR) while \fBrun\fR runs. Point hostdev at it with
\fBHOSTDEV_ROOT=DIR\fR, or bind it over \fI/sys\fR in a private mount
namespace for other programs.
.TP
\fIDIR/etc\fR, \fIDIR/var\fR, \fIDIR/run\fR
Ordinary directories made for the simulated host (with mdevctl's
\fIscripts.d\fR directories); \fBreboot\fR empties \fIDIR/run\fR.
.TP
\fIDIR/run/hostdev\-sim.lock\fR, \fIDIR/run/hostdev\-sim.pid\fR
Held and written while a simulator serves DIR: a second \fBrun\fR on the
same DIR is refused, naming the first one's pid.
.SH SIGNALS
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Unmount \fIDIR/sys\fR and exit.
.TP
\fBSIGUSR1\fR
Reboot the simulated hardware (what \fBreboot\fR sends).
.SH EXIT STATUS
0 when \fBrun\fR was stopped by a signal or another command succeeded; 1
when it failed (a profile that does not parse, a root already served, FUSE
unusable); 2 for a usage error.
.SH SEE ALSO
\fBhostdevctl\fR(1), \fBhostdevd\fR(8), \fBfusermount3\fR(1)
"#;

/// Text for roff: backslashes and hyphens escaped, no line starting as a
/// request.
fn esc(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// One page for the whole program: each command with its options (clap's
/// SUBCOMMANDS section points at a page per command, which hostdev-sim
/// does not ship).
fn commands(cmd: &clap::Command) -> String {
    let mut out = String::from(".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let args: Vec<&clap::Arg> = sub
            .get_arguments()
            .filter(|a| !a.is_hide_set() && a.get_long().is_some_and(|l| l != "help"))
            .collect();
        let mut head = format!("\\fB{}\\fR", esc(sub.get_name()));
        for a in &args {
            let long = a.get_long().unwrap_or_default();
            let value = a
                .get_value_names()
                .and_then(|v| v.first())
                .map(|v| format!(" \\fI{}\\fR", esc(v)))
                .unwrap_or_default();
            let one = format!("\\fB\\-\\-{}\\fR{value}", esc(long));
            head.push(' ');
            head.push_str(&if a.is_required_set() {
                one
            } else {
                format!("[{one}]")
            });
        }
        out.push_str(&format!(".TP\n{head}\n"));
        if let Some(about) = sub.get_about() {
            out.push_str(&format!("{}\n", esc(&about.to_string())));
        }
        if !args.is_empty() {
            out.push_str(".RS\n");
            for a in &args {
                let long = a.get_long().unwrap_or_default();
                out.push_str(&format!(".TP\n\\fB\\-\\-{}\\fR\n", esc(long)));
                let mut help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
                if let Some(d) = a.get_default_values().first() {
                    help.push_str(&format!(" (default {})", d.to_string_lossy()));
                }
                out.push_str(&format!("{}\n", esc(&help)));
            }
            out.push_str(".RE\n");
        }
    }
    out
}

/// The page, in roff: clap's title, synopsis and options, the commands
/// with their options, then [`EXTRA`] before the VERSION section.
pub fn page(cmd: clap::Command) -> std::io::Result<Vec<u8>> {
    let cmd = cmd.disable_help_subcommand(true);
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("1")
        .render(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let version = text.find(".SH VERSION").unwrap_or(text.len());
    let (body, tail) = text.split_at(version);
    let body = match body.find(".SH SUBCOMMANDS") {
        Some(at) => &body[..at],
        None => body,
    };
    Ok(format!("{body}{}{EXTRA}{tail}", commands(&cmd)).into_bytes())
}
