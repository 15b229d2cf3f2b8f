//! Running the `docker` CLI (and the other machine tools the fleet needs) for the harness,
//! the labels every fleet container and network carries, and the sweep of leftovers from
//! crashed runs. Fleet logic (what to run where) lives in `fleet.rs` and `host.rs`.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use crate::fleet::FleetError;

/// Label on every fleet container and network; its value is the fleet's network name.
pub(crate) const LABEL_FLEET: &str = "tendhost.fleet";
/// Label with the PID of the test process that owns the object.
pub(crate) const LABEL_OWNER_PID: &str = "tendhost.fleet.owner-pid";
/// Label with that process's start time (clock ticks after boot), so a reused PID is not
/// mistaken for the owner.
pub(crate) const LABEL_OWNER_START: &str = "tendhost.fleet.owner-start";

/// Fleet work folders (repositories, keys) are `$TMPDIR/tendhost-fleet-*`, each with an
/// `owner` file (`PID START`), so the sweep can remove those of dead processes too.
pub(crate) const WORK_DIR_PREFIX: &str = "tendhost-fleet-";
pub(crate) const OWNER_FILE: &str = "owner";

/// What a finished command printed, whatever its exit status.
pub(crate) struct Ran {
    pub(crate) status: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

fn describe<I, S>(program: &str, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut line = program.to_owned();
    for arg in args {
        let _ = write!(line, " {}", arg.as_ref().to_string_lossy());
    }
    line
}

/// How long one harness command (`docker ...`, a repository tool) may run. Far above what any
/// takes on a loaded machine; below the test runner's 300 s kill, so a wedged `docker exec`
/// fails the test with its name.
const COMMAND_DEADLINE: std::time::Duration = std::time::Duration::from_secs(200);

/// Runs `program args` (in `cwd` when given) to the end and returns its output, failing
/// only when it cannot be started or does not end within [`COMMAND_DEADLINE`].
pub(crate) async fn run_raw<I, S>(
    program: &str,
    args: I,
    cwd: Option<&Path>,
) -> Result<Ran, FleetError>
where
    I: IntoIterator<Item = S> + Clone,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command
        .args(args.clone())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    // kill_on_drop: a command that outlives the deadline is killed, and the test names it
    // instead of hanging until the runner's own kill.
    let output = match tokio::time::timeout(COMMAND_DEADLINE, command.output()).await {
        Ok(output) => output.map_err(|source| FleetError::Spawn {
            command: describe(program, args),
            source,
        })?,
        Err(_) => {
            return Err(FleetError::Timeout {
                what: format!("`{}` to finish", describe(program, args)),
                after: COMMAND_DEADLINE,
            });
        }
    };
    Ok(Ran {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Runs `program args` and returns its stdout; a non-zero exit is an error naming the
/// command and carrying its stderr.
pub(crate) async fn run<I, S>(
    program: &str,
    args: I,
    cwd: Option<&Path>,
) -> Result<String, FleetError>
where
    I: IntoIterator<Item = S> + Clone,
    S: AsRef<OsStr>,
{
    let ran = run_raw(program, args.clone(), cwd).await?;
    if ran.status == 0 {
        Ok(ran.stdout)
    } else {
        Err(FleetError::Command {
            command: describe(program, args),
            status: ran.status,
            output: format!("{}{}", ran.stdout, ran.stderr).trim().to_owned(),
        })
    }
}

/// `docker args...`, stdout on success.
pub(crate) async fn docker<I, S>(args: I) -> Result<String, FleetError>
where
    I: IntoIterator<Item = S> + Clone,
    S: AsRef<OsStr>,
{
    run("docker", args, None).await
}

/// `docker args...` from synchronous code (`Drop`), errors ignored: used only to clean up.
pub(crate) fn docker_blocking(args: &[&str]) {
    let _ = std::process::Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The start time of process `pid` in clock ticks after boot (field 22 of
/// `/proc/PID/stat`), or `None` when no such process runs.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses; fields after the
    // last ')' start at field 3.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// `PID START` of this test process, as written to a work folder's [`OWNER_FILE`].
pub(crate) fn owner_line() -> String {
    let pid = std::process::id();
    format!("{pid} {}\n", process_start_time(pid).unwrap_or(0))
}

/// `--label` arguments marking an object as owned by this test process.
pub(crate) fn owner_labels(fleet: &str) -> Vec<String> {
    let pid = std::process::id();
    let start = process_start_time(pid).unwrap_or(0);
    vec![
        "--label".to_owned(),
        format!("{LABEL_FLEET}={fleet}"),
        "--label".to_owned(),
        format!("{LABEL_OWNER_PID}={pid}"),
        "--label".to_owned(),
        format!("{LABEL_OWNER_START}={start}"),
    ]
}

/// Whether the process recorded in an object's labels is gone (so the object is a
/// leftover of a crashed or killed run). Unparseable labels count as gone.
fn owner_is_gone(pid: &str, start: &str) -> bool {
    let (Ok(pid), Ok(start)) = (pid.trim().parse::<u32>(), start.trim().parse::<u64>()) else {
        return true;
    };
    process_start_time(pid) != Some(start)
}

/// Removes fleet containers, networks and work folders whose owning test process is gone.
/// Those of live processes (other tests running in parallel) are left alone.
pub(crate) async fn sweep_leftovers() -> Result<(), FleetError> {
    let format = format!(
        "{{{{.ID}}}} {{{{.Label \"{LABEL_OWNER_PID}\"}}}} {{{{.Label \"{LABEL_OWNER_START}\"}}}}"
    );
    let filter = format!("label={LABEL_FLEET}");
    let containers = docker(["ps", "-a", "--filter", &filter, "--format", &format]).await?;
    let dead_containers = dead_ids(&containers);
    if !dead_containers.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(dead_containers.iter().map(String::as_str));
        // Another process may sweep the same leftovers at the same time.
        let _ = run_raw("docker", &args, None).await?;
    }
    let networks = docker(["network", "ls", "--filter", &filter, "--format", &format]).await?;
    for network in dead_ids(&networks) {
        let _ = run_raw("docker", ["network", "rm", network.as_str()], None).await?;
    }
    // After the containers: they mount these folders.
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with(WORK_DIR_PREFIX)
        {
            continue;
        }
        let Ok(owner) = std::fs::read_to_string(entry.path().join(OWNER_FILE)) else {
            continue;
        };
        let mut fields = owner.split_whitespace();
        if owner_is_gone(fields.next().unwrap_or(""), fields.next().unwrap_or("")) {
            let _ = tokio::fs::remove_dir_all(entry.path()).await;
        }
    }
    Ok(())
}

fn dead_ids(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let id = fields.next()?;
            let pid = fields.next().unwrap_or("");
            let start = fields.next().unwrap_or("");
            owner_is_gone(pid, start).then(|| id.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_made_up_ones_are_gone() {
        let pid = std::process::id();
        let start = process_start_time(pid).expect("own /proc/self/stat is readable");
        assert!(!owner_is_gone(&pid.to_string(), &start.to_string()));
        assert!(owner_is_gone(&pid.to_string(), &(start + 1).to_string()));
        assert!(owner_is_gone("not-a-pid", "1"));
        assert!(owner_is_gone("", ""));
    }

    #[test]
    fn dead_ids_keeps_only_leftovers() {
        let pid = std::process::id();
        let start = process_start_time(pid).unwrap();
        let listing = format!("aaa {pid} {start}\nbbb {pid} 1\nccc\n");
        assert_eq!(dead_ids(&listing), vec!["bbb".to_owned(), "ccc".to_owned()]);
    }
}
