//! The detached upgrade job on the host, as shell text: the job script (`run.sh`: optional dpkg
//! repair, list refresh, upgrade; output to `log`, snapshots `before`/`after`, times, and the
//! exit code written last to `exit`), the launcher that starts it under `systemd-run` or
//! `setsid nohup`, the streaming pass that follows `log` from a byte offset, and the summary
//! that reads a finished job back. Every inserted value is quoted with `tendhost_exec::quote`.
//!
//! Job directory layout (`<job_root>/<job_id>/`, mode 0700, its files 0600): `run.sh`, `pid`,
//! `started`, `log`, `before`, `after`, `ended`, `exit`, and `collected` once the daemon has
//! stored the outcome (`retire`).

use std::fmt::Write as _;
use std::time::Duration;

use tendhost_exec::{Cmd, quote};

use crate::command::{apt, dnf, look};
use crate::options::{JobId, ListRefresh, PkgOptions};
use crate::parse::job::REPAIR_MARKER;
use crate::selection::{Target, TargetKind};
use crate::types::PackageManager;

/// The job script and, for dry runs and logs, the command lines it runs in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobScript {
    pub script: String,
    /// The dpkg repair line (apt), which runs only when apt reports "dpkg was interrupted".
    pub repair: Option<String>,
    /// The lines that always run (while the previous one succeeded).
    pub commands: Vec<String>,
}

/// How long one streaming pass sleeps between looks at the log.
const STREAM_TICK: Duration = Duration::from_millis(200);

/// A log up to this size comes back with the final pass's summary; a bigger one is read by
/// the summary command (its tail is up to `MAX_COLLECTED_LOG`, too much for a status's
/// stderr).
const INLINE_SUMMARY_MAX: u64 = 64 * 1024;

/// Log bytes are passed through this `tr`, which maps `\r` to `\n` and non-ASCII bytes to `?`
/// one for one: what the sink receives is as long as what the file holds, so byte offsets
/// counted from received lines stay exact.
const SANITIZE: &str = "LC_ALL=C tr '\\r\\200-\\377' '\\n?'";

/// One step of the job script: runs when every step before it succeeded.
fn step(cmd: &Cmd) -> String {
    let line = cmd.display();
    format!(
        "if [ \"$rc\" -eq 0 ]; then\n  echo {announce}\n  {line}; rc=$?\nfi\n",
        announce = quote(format!("tendhost: running: {line}")),
    )
}

/// Builds the job script for `manager`.
///
/// apt: `apt-get update` (when refreshing), then the upgrade. When the upgrade stops with apt's
/// "dpkg was interrupted" (apt says so only once it holds the dpkg lock, so a dpkg run of
/// another process is never mistaken for an interrupted one), the job logs
/// [`REPAIR_MARKER`], runs `dpkg --configure -a` with the same non-interactive settings, and
/// runs the upgrade again. dnf/yum: the upgrade.
pub fn run_script(manager: PackageManager, job_id: &JobId, opts: &PkgOptions) -> JobScript {
    run_script_for(manager, job_id, opts, &Target::everything())
}

/// [`run_script`] for a resolved selection: apt's upgrade becomes `install --only-upgrade`
/// with the names (`apt::upgrade_only`), dnf's takes `--security`, `--exclude=` and names
/// (`dnf::upgrade_target`); [`TargetKind::Nothing`] runs no upgrade step (the job still
/// refreshes when asked and takes its snapshots, and logs that nothing was selected).
pub fn run_script_for(
    manager: PackageManager,
    job_id: &JobId,
    opts: &PkgOptions,
    target: &Target,
) -> JobScript {
    let snapshot;
    let mut body = String::new();
    let mut repair = None;
    let mut commands = Vec::new();
    match manager {
        PackageManager::Apt => {
            if opts.refresh == ListRefresh::Refresh {
                let refresh = apt::refresh(opts);
                body.push_str(&step(&refresh));
                commands.push(refresh.display());
            }
            if target.kind == TargetKind::Nothing {
                body.push_str(NOTHING_SELECTED);
                snapshot = apt::installed().display();
                return JobScript {
                    script: finish_script(opts, false, job_id, manager, &snapshot, &body),
                    repair: None,
                    commands,
                };
            }
            let upgrade = match &target.kind {
                TargetKind::Names(names) => apt::upgrade_only(opts, names, &target.keep),
                _ => apt::upgrade(opts),
            };
            let repair_cmd = apt::repair();
            let announce = format!("{REPAIR_MARKER}; repairing with: {}", repair_cmd.display());
            body.push_str("pos=$(stat -c %s \"$d/log\" 2>/dev/null || echo 0)\n");
            body.push_str(&step(&upgrade));
            body.push_str(&format!(
                "if [ \"$rc\" -ne 0 ] && tail -c +\"$((pos + 1))\" \"$d/log\" | grep -q 'dpkg was interrupted'; then\n  \
                 echo {announce}\n  \
                 {repair_line}; rc=$?\n  \
                 echo \"tendhost: repair exited with code $rc\"\n\
                 {again}\
                 fi\n",
                announce = quote(&announce),
                repair_line = repair_cmd.display(),
                again = step(&upgrade),
            ));
            repair = Some(repair_cmd.display());
            commands.push(upgrade.display());
            snapshot = apt::installed().display();
        }
        PackageManager::Dnf | PackageManager::Yum => {
            snapshot = dnf::installed().display();
            if target.kind == TargetKind::Nothing {
                body.push_str(NOTHING_SELECTED);
            } else {
                let upgrade = dnf::upgrade_target(manager, opts, target);
                body.push_str(&step(&upgrade));
                commands.push(upgrade.display());
            }
        }
    }
    // Everything upgraded (no selection, nothing kept back by a pin): apt's summary can
    // tell that nothing is left.
    let full_upgrade = target.kind == TargetKind::Everything && target.keep.is_empty();
    JobScript {
        script: finish_script(opts, full_upgrade, job_id, manager, &snapshot, &body),
        repair,
        commands,
    }
}

/// What an apt job looks at once its upgrade has ended, written to `look` in the job
/// directory and read back with the summary: the one-command look (`command::look`) without a
/// refresh, with the inventory. So collecting the job also tells the host's pending updates,
/// reboot state and inventory after it, with no round trip of its own.
pub fn closing_look(opts: &PkgOptions) -> Cmd {
    look::apt(&closing_opts(opts), look::InventoryRead::Always, None)
}

fn closing_opts(opts: &PkgOptions) -> PkgOptions {
    PkgOptions {
        refresh: ListRefresh::Skip,
        ..opts.clone()
    }
}

/// The line a job logs when its selection matched no pending update.
const NOTHING_SELECTED: &str =
    "echo 'tendhost: no pending update matches the selection; nothing to upgrade'\n";

/// Wraps `body` into the job script: pid, times, snapshots before and after, on apt the
/// closing look (`closing_look`), exit code last.
fn finish_script(
    opts: &PkgOptions,
    full_upgrade: bool,
    job_id: &JobId,
    manager: PackageManager,
    snapshot: &str,
    body: &str,
) -> String {
    let closing = match manager {
        PackageManager::Apt if !full_upgrade => format!(
            "{} > \"$d/look.tmp\" 2>/dev/null; mv \"$d/look.tmp\" \"$d/look\"\n",
            closing_look(opts).display(),
        ),
        // apt's last summary line of this job; `... and 0 not upgraded.` after a successful
        // upgrade of everything means nothing is left pending, and the simulation is not run
        // again. (A selection's `install --only-upgrade` counts neither the packages it
        // kept at their version nor those it did not name.)
        PackageManager::Apt => format!(
            "last=$(grep -E '^[0-9]+ upgraded, [0-9]+ newly installed, [0-9]+ to remove and [0-9]+ not upgraded\\.$' \"$d/log\" | tail -n 1)\n\
             case \"$rc:$last\" in\n  \
               0:*' and 0 not upgraded.') {settled} tendhost-look \"$last\" > \"$d/look.tmp\" 2>/dev/null ;;\n  \
               *) {full} > \"$d/look.tmp\" 2>/dev/null ;;\n\
             esac\n\
             mv \"$d/look.tmp\" \"$d/look\"\n",
            settled = look::apt_settled(&closing_opts(opts)).display(),
            full = closing_look(opts).display(),
        ),
        PackageManager::Dnf | PackageManager::Yum => String::new(),
    };
    let dir = opts.job_dir(job_id);
    format!(
        "d={dir}\n\
         umask 077\n\
         echo $$ > \"$d/pid\"\n\
         ms() {{ t=$(date +%s%3N 2>/dev/null); case \"$t\" in ''|*N*) echo \"$(date +%s)000\" ;; *) echo \"$t\" ;; esac; }}\n\
         ms > \"$d/started\"\n\
         exec >>\"$d/log\" 2>&1 </dev/null\n\
         snapshot() {{ {snapshot} > \"$d/$1.tmp\" 2>/dev/null; mv \"$d/$1.tmp\" \"$d/$1\"; }}\n\
         snapshot before\n\
         echo {started}\n\
         umask 022\n\
         rc=0\n\
         {body}\
         umask 077\n\
         snapshot after\n\
         {closing}\
         ms > \"$d/ended\"\n\
         echo \"tendhost: job finished with exit code $rc\"\n\
         echo \"$rc\" > \"$d/exit.tmp\" && mv \"$d/exit.tmp\" \"$d/exit\"\n",
        dir = quote(&dir),
        started = quote(format!("tendhost: job {job_id} started ({manager})")),
    )
}

/// The launcher: creates the job directory (atomically: a second launch of the same id finds
/// it and starts nothing), writes `run.sh` and starts it detached from the SSH session, under
/// `systemd-run` when systemd runs the host (`/run/systemd/system` exists), else under
/// `setsid nohup`. Prints `tendhost-launch existing|systemd-run|setsid`.
pub fn launch(job_id: &JobId, opts: &PkgOptions, script: &JobScript) -> Cmd {
    let dir = opts.job_dir(job_id);
    let unit = format!("tendhost-job-{job_id}");
    Cmd::shell(format!(
        "set -e\n\
         root={root}\n\
         d={dir}\n\
         umask 077\n\
         mkdir -p \"$root\"\n\
         chmod 700 \"$root\"\n\
         if ! mkdir \"$d\" 2>/dev/null; then echo 'tendhost-launch existing'; exit 0; fi\n\
         printf '%s' {script} > \"$d/run.sh\"\n\
         if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then\n  \
           systemd-run --quiet --collect --unit={unit} --description={description} /bin/sh \"$d/run.sh\"\n  \
           echo 'tendhost-launch systemd-run'\n\
         else\n  \
           setsid nohup /bin/sh \"$d/run.sh\" >/dev/null 2>&1 </dev/null &\n  \
           echo 'tendhost-launch setsid'\n\
         fi\n",
        root = quote(&opts.job_root),
        dir = quote(&dir),
        script = quote(&script.script),
        unit = quote(&unit),
        description = quote(format!("tendhost upgrade job {job_id}")),
    ))
    .privileged()
    .timeout(Duration::from_secs(60))
}

/// One streaming pass: prints the job log from byte `offset` as it grows, until the job has
/// finished (its `exit` file exists, so the log is complete), its process is gone without an
/// exit code, or `opts.stream_pass` has elapsed; then prints `tendhost-stream state=S
/// offset=N` on stderr (S = running, finished, died or missing) and, when the job has ended
/// with a log of at most [`INLINE_SUMMARY_MAX`] bytes, the job's summary after it (the
/// [`summary`] sections), so collecting a finished job takes no further round trip.
pub fn stream(job_id: &JobId, opts: &PkgOptions, offset: u64) -> Cmd {
    let dir = opts.job_dir(job_id);
    let n_ticks = (opts.stream_pass.as_millis() / STREAM_TICK.as_millis()).max(1);
    Cmd::shell(format!(
        "d={dir}; off={offset}; n=0; max={n_ticks}\n\
         if [ ! -d \"$d\" ]; then echo \"tendhost-stream state=missing offset=$off\" >&2; exit 0; fi\n\
         while :; do\n  \
           st=running\n  \
           [ -e \"$d/exit\" ] && st=finished\n  \
           if [ \"$st\" = running ] && [ -s \"$d/pid\" ]; then\n    \
             pid=$(cat \"$d/pid\")\n    \
             if ! tr '\\000' ' ' < \"/proc/$pid/cmdline\" 2>/dev/null | grep -qF \"$d/run.sh\"; then\n      \
               if [ -e \"$d/exit\" ]; then st=finished; else st=died; fi\n    \
             fi\n  \
           fi\n  \
           size=$(stat -c %s \"$d/log\" 2>/dev/null || echo 0)\n  \
           if [ \"$size\" -gt \"$off\" ]; then\n    \
             tail -c +\"$((off + 1))\" \"$d/log\" | head -c \"$((size - off))\" | {SANITIZE}\n    \
             off=$size\n  \
           fi\n  \
           [ \"$st\" != running ] && break\n  \
           n=$((n + 1)); [ \"$n\" -ge \"$max\" ] && break\n  \
           sleep {tick}\n\
         done\n\
         echo \"tendhost-stream state=$st offset=$off\" >&2\n\
         if [ \"$st\" != running ] && [ \"$off\" -le {inline_max} ]; then\n\
         {{\n{summary}}} >&2\n\
         fi\n",
        dir = quote(&dir),
        tick = STREAM_TICK.as_secs_f64(),
        summary = summary_body(),
        inline_max = INLINE_SUMMARY_MAX,
    ))
    .privileged()
    .timeout(opts.stream_pass + Duration::from_secs(60))
}

/// The summary sections of the job in `$d` (see [`summary`]).
fn summary_body() -> String {
    format!(
        "for f in exit started ended before after; do echo \"@@tendhost:$f@@\"; cat \"$d/$f\" 2>/dev/null || true; done\n\
         echo '@@tendhost:size@@'\n\
         wc -c < \"$d/log\" 2>/dev/null || echo 0\n\
         if [ -e \"$d/look\" ]; then echo '@@tendhost:look@@'; cat \"$d/look\"; fi\n\
         echo '@@tendhost:log@@'\n\
         tail -c {max} \"$d/log\" 2>/dev/null | {SANITIZE} || true\n",
        max = crate::parse::job::MAX_COLLECTED_LOG,
    )
}

/// Reads a job back: sections `exit` (empty while there is none), `started`, `ended`, `before`,
/// `after`, `size`, `look` (an apt job's closing look, when it ran: its own parts follow up to
/// the log) then `log` (the log's tail, sanitized like the stream) as the last section.
pub fn summary(job_id: &JobId, opts: &PkgOptions) -> Cmd {
    Cmd::shell(format!(
        "d={dir}\n\
         if [ ! -d \"$d\" ]; then echo \"tendhost: no job directory $d\" >&2; exit 3; fi\n\
         {body}",
        dir = quote(opts.job_dir(job_id)),
        body = summary_body(),
    ))
    .privileged()
    .timeout(Duration::from_secs(120))
}

/// Retires job directories whose outcome the daemon has collected and stored: marks each of
/// `collected` with a `collected` file, then removes every marked directory but the newest
/// `keep` (job ids sort by creation). A directory without the mark (a job still running, or
/// one whose outcome was never collected) is never removed. Prints `tendhost-retire kept=K
/// removed=R`.
pub fn retire(collected: &[JobId], opts: &PkgOptions, keep: usize) -> Cmd {
    let mut marks = String::new();
    for job_id in collected {
        let dir = quote(opts.job_dir(job_id));
        let _ = writeln!(marks, "if [ -d {dir} ]; then : > {dir}/collected; fi");
    }
    Cmd::shell(format!(
        "export LC_ALL=C\n\
         root={root}\n\
         umask 077\n\
         {marks}\
         set -- \"$root\"/*/collected\n\
         [ -e \"$1\" ] || {{ echo 'tendhost-retire kept=0 removed=0'; exit 0; }}\n\
         n=$#; removed=0\n\
         for f; do\n  \
           if [ \"$n\" -gt {keep} ]; then rm -rf -- \"${{f%/collected}}\" && removed=$((removed + 1)); fi\n  \
           n=$((n - 1))\n\
         done\n\
         echo \"tendhost-retire kept=$(($# - removed)) removed=$removed\"\n",
        root = quote(opts.job_root.trim_end_matches('/')),
    ))
    .privileged()
    .timeout(Duration::from_secs(60))
}

/// Removes a job directory (after its outcome has been stored).
pub fn remove(job_id: &JobId, opts: &PkgOptions) -> Cmd {
    Cmd::new("rm")
        .args(["-rf", "--"])
        .arg(opts.job_dir(job_id))
        .privileged()
}

#[cfg(test)]
mod tests {
    use crate::command::job::{launch, run_script, stream};
    use crate::options::{JobId, ListRefresh, PkgOptions};
    use crate::types::PackageManager;

    #[test]
    fn apt_script_has_repair_refresh_and_upgrade() {
        let opts = PkgOptions::default();
        let job = JobId::new("j-1").unwrap();
        let script = run_script(PackageManager::Apt, &job, &opts);
        assert_eq!(script.commands.len(), 2, "{:?}", script.commands);
        assert!(
            script
                .repair
                .as_deref()
                .unwrap()
                .ends_with("dpkg --force-confdef --force-confold --configure -a")
        );
        assert!(script.commands[0].ends_with("apt-get -q -o DPkg::Lock::Timeout=60 update"));
        assert!(script.commands[1].ends_with("DPkg::Lock::Timeout=60 dist-upgrade"));
        assert!(script.script.starts_with("d=/var/lib/tendhost/jobs/j-1\n"));
        assert!(script.script.ends_with("mv \"$d/exit.tmp\" \"$d/exit\"\n"));
        let launcher = launch(&job, &opts, &script).display();
        assert!(launcher.contains("systemd-run --quiet --collect --unit=tendhost-job-j-1"));
        assert!(launcher.contains("setsid nohup /bin/sh"));
    }

    #[test]
    fn dnf_script_without_refresh() {
        let opts = PkgOptions {
            refresh: ListRefresh::Skip,
            ..PkgOptions::default()
        };
        let script = run_script(PackageManager::Dnf, &JobId::new("x").unwrap(), &opts);
        assert_eq!(script.commands, ["env LC_ALL=C dnf -y upgrade"]);
        assert_eq!(script.repair, None);
        assert!(!script.script.contains("dpkg"));
    }

    #[test]
    fn odd_job_root_is_quoted() {
        let opts = PkgOptions {
            job_root: "/tmp/it's $(here)".into(),
            ..PkgOptions::default()
        };
        let cmd = stream(&JobId::new("a").unwrap(), &opts, 5);
        let line = cmd.display();
        assert!(line.contains("d="), "{line}");
        assert!(!line.contains("d=/tmp/it's $(here)/a;"), "{line}");
    }
}
