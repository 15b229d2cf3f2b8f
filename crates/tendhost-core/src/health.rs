//! Health checks (`health_check` of a host): the command and/or the HTTP GET, both through the
//! host's `Executor` (the GET over a connection its SSH master forwards), retried
//! `retries` times `interval` apart. `run` returns what the last attempt found; `record` keeps
//! it as the host's `last_health_check` and announces `health_check_finished`. What a failure
//! does to a job or a rollout is decided by the callers (`driver`, `rollout`, `fleet`).

use jiff::Timestamp;
use tendhost_exec::{Cmd, Executor, NoSink};

use crate::events::EventKind;
use crate::host::HostShared;
use crate::model::HealthReport;
use crate::spec::HealthCheckSpec;

/// The most of a check's output kept (the start of it).
const MAX_OUTPUT: usize = 4096;

/// The failure reason a failed health check leaves on a host (`failure.reason`).
pub const HEALTH_CHECK_FAILED: &str = "health_check_failed";

/// Why a host was skipped or refused before its update (`pre_check`).
pub const UNHEALTHY_BEFORE_UPDATE: &str = "unhealthy_before_update";

/// The `pre_check` of `host` before an update: `Err(output)` when it has a check with
/// `pre_check = true` and that check fails (recorded and announced like any check).
pub async fn pre_check(host: &HostShared) -> Result<(), String> {
    if !host
        .spec
        .health_check
        .as_ref()
        .is_some_and(|spec| spec.pre_check)
    {
        return Ok(());
    }
    match check_host(host, None).await {
        Some(report) if !report.ok => Err(report.output),
        _ => Ok(()),
    }
}

/// Runs `spec` on the host behind `exec` until an attempt passes or `retries` more failed.
pub async fn run(exec: &dyn Executor, spec: &HealthCheckSpec) -> (bool, String, u32) {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (ok, output) = attempt(exec, spec).await;
        if ok || attempts > spec.retries {
            return (ok, output, attempts);
        }
        tokio::time::sleep(spec.interval).await;
    }
}

/// Runs the check of `host` (which must have one), keeps it as `last_health_check` and
/// announces `health_check_finished`; returns the report.
pub async fn check_host(host: &HostShared, job_id: Option<&str>) -> Option<HealthReport> {
    let spec = host.spec.health_check.as_ref()?;
    let (ok, output, attempts) = run(host.executor.as_ref(), spec).await;
    let report = HealthReport {
        ok,
        output,
        attempts,
        at: Timestamp::now(),
        job_id: job_id.map(str::to_owned),
    };
    host.status().last_health_check = Some(report.clone());
    host.persist();
    host.ctx().bus.publish(EventKind::HealthCheckFinished {
        host: host.name().to_owned(),
        job_id: report.job_id.clone(),
        ok,
        output: report.output.clone(),
    });
    Some(report)
}

/// One attempt: every configured part must pass.
async fn attempt(exec: &dyn Executor, spec: &HealthCheckSpec) -> (bool, String) {
    let mut ok = true;
    let mut parts = Vec::new();
    if let Some(argv) = spec.command.as_deref()
        && let Some((program, args)) = argv.split_first()
    {
        let cmd = Cmd::new(program).args(args).timeout(spec.timeout);
        let shown = exec.display(&cmd);
        match exec.run(&cmd, &NoSink).await {
            Ok(out) => {
                let said = [out.stdout.trim(), out.stderr.trim()]
                    .into_iter()
                    .filter(|text| !text.is_empty())
                    .collect::<Vec<_>>()
                    .join("\n");
                if out.exit_code == 0 {
                    parts.push(format!("{shown}: exit 0{}", colon(&said)));
                } else {
                    ok = false;
                    parts.push(format!("{shown}: exit {}{}", out.exit_code, colon(&said)));
                }
            }
            Err(err) => {
                ok = false;
                parts.push(format!("{shown}: {err}"));
            }
        }
    }
    if let Some(url) = &spec.http {
        match exec.http_get(url, spec.timeout).await {
            Ok(answer) if answer.status == spec.expect_status => {
                parts.push(format!("GET {url}: status {}", answer.status));
            }
            Ok(answer) => {
                ok = false;
                parts.push(format!(
                    "GET {url}: status {} (expected {}){}",
                    answer.status,
                    spec.expect_status,
                    colon(answer.body.trim())
                ));
            }
            Err(err) => {
                ok = false;
                parts.push(err.to_string());
            }
        }
    }
    let mut output = parts.join("; ");
    if output.len() > MAX_OUTPUT {
        let mut end = MAX_OUTPUT;
        while !output.is_char_boundary(end) {
            end -= 1;
        }
        output.truncate(end);
        output.push_str(" [...]");
    }
    (ok, output)
}

fn colon(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}
