//! The client commands, one function each: ask the daemon through `tendhost-client`, print a
//! table or the API's JSON, follow long work over the event stream when asked, and turn the
//! outcome into an exit code (a failed host or job is exit 1, naming it).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tendhost_api::events::{EventPayload, StreamMessage};
use tendhost_api::hosts::{HostDetail, HostListQuery, HostState, JobAccepted, RebootRequest};
use tendhost_api::jobs::{Job, JobListQuery, JobState};
use tendhost_api::rollouts::{
    FleetCheckRequest, HostFilter, MaxFailures, Rollout, RolloutAccepted, RolloutHostState,
    RolloutListQuery, RolloutState,
};
use tendhost_api::schedules::{Packages, Schedule};
use tendhost_client::{Client, StreamOptions};

use crate::Failure;
use crate::args::{
    CheckArgs, Command, EventsArgs, HostsArgs, JobsArgs, RolloutArgs, ScheduleCommand, UpdateArgs,
};
use crate::follow::{self, Work};
use crate::output::{self, Style, Table, name, or_dash, short_time};

/// What every command needs besides the client.
pub(crate) struct Context {
    pub json: bool,
    pub style: Style,
}

/// Runs one client command.
pub(crate) async fn run(client: &Client, cx: &Context, command: Command) -> Result<(), Failure> {
    match command {
        Command::Hosts(args) => hosts(client, cx, args).await,
        Command::Host { name } => host(client, cx, &name).await,
        Command::Check(args) => check(client, cx, args).await,
        Command::Update(args) => update(client, cx, args).await,
        Command::Reboot {
            name,
            force,
            follow,
        } => {
            let stream = opened(client, follow).await?;
            let accepted = client.reboot_host(&name, &RebootRequest { force }).await?;
            jobs_started(client, cx, vec![accepted], stream).await
        }
        Command::Retry { name, follow } => {
            let stream = opened(client, follow).await?;
            let accepted = client.retry_host(&name).await?;
            jobs_started(client, cx, vec![accepted], stream).await
        }
        Command::Ack { name } => {
            let host = client.acknowledge_host(&name).await?;
            if cx.json {
                output::json(&host)
            } else {
                crate::outln!("{}: failure acknowledged", host.name);
                Ok(())
            }
        }
        Command::Rollout(args) => rollout(client, cx, args).await,
        Command::Rollouts { state } => rollouts(client, cx, state).await,
        Command::Approve { rollout, follow } => {
            let stream = opened(client, follow).await?;
            let answer = client.approve_rollout(&rollout).await?;
            rollout_changed(client, cx, answer, "approved", stream).await
        }
        Command::Cancel { rollout } => {
            let answer = client.cancel_rollout(&rollout).await?;
            rollout_changed(client, cx, answer, "cancelling", None).await
        }
        Command::Resume { rollout, follow } => {
            let stream = opened(client, follow).await?;
            let answer = client.resume_rollout(&rollout).await?;
            rollout_changed(client, cx, answer, "resumed", stream).await
        }
        Command::Schedules => schedules(client, cx).await,
        Command::Schedule(ScheduleCommand::Run { name, follow }) => {
            let stream = opened(client, follow).await?;
            let accepted = client.run_schedule(&name).await?;
            if stream.is_none() {
                if cx.json {
                    return output::json(&accepted);
                }
                crate::outln!("schedule {name}: rollout {} started", accepted.rollout_id);
                return Ok(());
            }
            let rollout = client.get_rollout(&accepted.rollout_id).await?;
            rollout_changed(client, cx, rollout, "started", stream).await
        }
        Command::Schedule(ScheduleCommand::Pause { name }) => {
            schedule_changed(cx, &client.pause_schedule(&name).await?, "paused")
        }
        Command::Schedule(ScheduleCommand::Resume { name }) => {
            schedule_changed(cx, &client.resume_schedule(&name).await?, "resumed")
        }
        Command::Jobs(args) => jobs(client, cx, args).await,
        Command::Logs { job, follow } => logs(client, cx, &job, follow).await,
        Command::Events(args) => events(client, cx, args).await,
        Command::Run
        | Command::CheckConfig
        | Command::DefaultConfig
        | Command::Token(_)
        | Command::Tls(_)
        | Command::Completions { .. }
        | Command::Man => Err(Failure::usage("not a client command")),
    }
}

/// The event stream, opened before the work starts when the work is to be followed.
async fn opened(
    client: &Client,
    follow: bool,
) -> Result<Option<tendhost_client::EventStream>, Failure> {
    if follow {
        Ok(Some(follow::open(client).await?))
    } else {
        Ok(None)
    }
}

async fn hosts(client: &Client, cx: &Context, args: HostsArgs) -> Result<(), Failure> {
    let state = match &args.state {
        Some(text) => Some(parse_wire::<HostState>("--state", text)?),
        None => None,
    };
    let query = HostListQuery {
        tag: args.tag,
        group: args.group,
        state,
        ..HostListQuery::default()
    };
    let hosts = client.all_hosts(&query).await?;
    if cx.json {
        return output::json(&hosts);
    }
    let mut table = Table::new(&[
        "NAME",
        "STATE",
        "PENDING",
        "SECURITY",
        "REBOOT",
        "LAST CHECK",
        "TAGS",
    ]);
    for host in &hosts {
        table.row(vec![
            host.name.clone(),
            cx.style.state(&name(&host.state)),
            host.n_pending.to_string(),
            host.n_security.to_string(),
            cx.style.state(&name(&host.reboot)),
            host.last_check
                .as_deref()
                .map_or_else(|| "-".to_owned(), short_time),
            host.tags.join(","),
        ]);
    }
    table.print(cx.style);
    Ok(())
}

async fn host(client: &Client, cx: &Context, host_name: &str) -> Result<(), Failure> {
    let host = client.get_host(host_name).await?;
    if cx.json {
        return output::json(&host);
    }
    print_host(&host, cx.style);
    Ok(())
}

fn print_host(host: &HostDetail, style: Style) {
    let port = host.port.map(|port| format!(":{port}")).unwrap_or_default();
    crate::outln!("name:        {}", host.name);
    crate::outln!("address:     {}@{}{port}", host.user, host.addr);
    crate::outln!("state:       {}", style.state(&name(&host.state)));
    crate::outln!("tags:        {}", host.tags.join(", "));
    crate::outln!("groups:      {}", host.groups.join(", "));
    crate::outln!("updates:     {}", name(&host.policy.updates));
    crate::outln!("reboot:      {}", style.state(&name(&host.reboot.state)));
    crate::outln!("last check:  {}", or_dash(host.last_check.as_deref()));
    crate::outln!("current job: {}", or_dash(host.current_job.as_deref()));
    if let Some(inventory) = &host.inventory {
        crate::outln!(
            "system:      {} {}, kernel {}, {}",
            inventory.os_name,
            inventory.os_version,
            inventory.kernel,
            inventory.arch
        );
    }
    if let Some(error) = &host.last_error {
        crate::outln!("last error:  {error}");
    }
    if let Some(failure) = &host.failure {
        crate::outln!(
            "failure:     {} failed at {}: {}{}",
            name(&failure.action),
            failure.failed_at,
            failure.error,
            if failure.acknowledged {
                " (acknowledged)"
            } else {
                ""
            }
        );
    }
    if host.pending.is_empty() {
        crate::outln!("pending:     none");
    } else {
        crate::outln!(
            "pending:     {} ({} security)",
            host.pending.len(),
            host.n_security
        );
        let mut table = Table::new(&["  PACKAGE", "FROM", "TO", "SECURITY"]);
        for update in &host.pending {
            table.row(vec![
                format!("  {}", update.name),
                or_dash(update.current_version.as_deref()),
                update.new_version.clone(),
                if update.security { "yes" } else { "" }.to_owned(),
            ]);
        }
        table.print(style);
    }
}

/// `check NAME... | --tag | --group | --all [--wait]`.
async fn check(client: &Client, cx: &Context, args: CheckArgs) -> Result<(), Failure> {
    let stream = opened(client, args.wait).await?;
    if args.names.is_empty() {
        let request = FleetCheckRequest {
            filter: HostFilter {
                tags: args.tag,
                groups: args.group,
                ..HostFilter::default()
            },
        };
        let accepted = client.check_fleet(&request).await?;
        return rollout_started(client, cx, accepted, stream).await;
    }
    let mut accepted = Vec::new();
    for host in &args.names {
        accepted.push(client.check_host(host).await?);
    }
    jobs_started(client, cx, accepted, stream).await
}

/// `update NAME... [--packages] [--dry-run] [--follow]`.
async fn update(client: &Client, cx: &Context, args: UpdateArgs) -> Result<(), Failure> {
    let mut body = json!({"dry_run": args.dry_run, "force": args.force});
    if let Some(packages) = &args.packages {
        body["packages"] = packages_value(packages)?;
    }
    let stream = opened(client, args.follow).await?;
    let mut accepted = Vec::new();
    for host in &args.names {
        accepted.push(client.update_host(host, &body).await?);
    }
    jobs_started(client, cx, accepted, stream).await
}

/// `--packages security|all|a,b` as the API's `packages` field (`Packages`: the word, or the
/// list of names).
fn packages_value(text: &str) -> Result<Value, Failure> {
    let packages = match text {
        "security" => Packages::Security,
        "all" => Packages::All,
        list => {
            let names: Vec<String> = list.split(',').map(|name| name.trim().to_owned()).collect();
            if names.iter().any(String::is_empty) {
                return Err(Failure::usage(format!(
                    "--packages {text:?}: use security, all, or a comma list of package names"
                )));
            }
            Packages::Names(names)
        }
    };
    Ok(json!(packages))
}

/// `--approve-after canary|INDEX` as the API's `approve_after`: `"canary"` or the batch index
/// (a number, from 0).
fn approve_after_value(text: &str) -> Result<Value, Failure> {
    if text == "canary" {
        return Ok(json!("canary"));
    }
    text.parse::<u64>().map(|index| json!(index)).map_err(|_| {
        Failure::usage(format!(
            "--approve-after {text:?}: use canary or a batch index (0, 1, ...)"
        ))
    })
}

/// Jobs were accepted: print them, or follow them to their end.
async fn jobs_started(
    client: &Client,
    cx: &Context,
    accepted: Vec<JobAccepted>,
    stream: Option<tendhost_client::EventStream>,
) -> Result<(), Failure> {
    let Some(mut stream) = stream else {
        if cx.json {
            return if accepted.len() == 1 {
                output::json(&accepted[0])
            } else {
                output::json(&accepted)
            };
        }
        for job in &accepted {
            crate::outln!(
                "{}: {} started, job {}",
                job.host,
                name(&job.kind),
                job.job_id
            );
        }
        return Ok(());
    };
    let work: BTreeMap<String, String> = accepted
        .iter()
        .map(|job| (job.job_id.clone(), job.host.clone()))
        .collect();
    follow::follow(&mut stream, &Work::Jobs(work), cx.json, cx.style).await?;
    let mut failed = Vec::new();
    for job in &accepted {
        let finished: Job = client.get_job(&job.job_id).await?;
        if finished.summary.state != JobState::Succeeded {
            failed.push(format!(
                "{}: {} {}: {}",
                job.host,
                name(&job.kind),
                name(&finished.summary.state),
                or_dash(finished.summary.summary.as_deref())
            ));
        } else if !cx.json {
            crate::outln!(
                "{}: {}",
                job.host,
                or_dash(finished.summary.summary.as_deref())
            );
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::failed(format!(
            "{} of {} job(s) did not succeed: {}",
            failed.len(),
            accepted.len(),
            failed.join("; ")
        )))
    }
}

/// `rollout ...`: the body of `POST /fleet/update`.
fn rollout_body(args: &RolloutArgs) -> Result<Value, Failure> {
    if args.batch == 0 {
        return Err(Failure::usage("--batch: must be at least 1"));
    }
    let mut body = json!({
        "batch_size": args.batch,
        "canary": args.canary,
        "filter": {
            "tags": args.tag,
            "groups": args.group,
            "hosts": args.hosts,
            "exclude_hosts": args.exclude,
        },
        "dry_run": args.dry_run,
        "force": args.force,
    });
    if let Some(text) = &args.max_failures {
        let value = match text.parse::<u64>() {
            Ok(count) => json!(count),
            Err(_) => json!(text),
        };
        serde_json::from_value::<MaxFailures>(value.clone())
            .map_err(|err| Failure::usage(format!("--max-failures {text:?}: {err}")))?;
        body["max_failures"] = value;
    }
    if let Some(seconds) = args.delay {
        body["delay_ms"] = json!(seconds.saturating_mul(1000));
    }
    if let Some(stage) = &args.approve_after {
        body["approve_after"] = approve_after_value(stage)?;
    }
    if let Some(timeout) = &args.approval_timeout {
        body["approval_timeout"] = json!(timeout);
    }
    if args.defer_outside_window {
        body["defer_outside_window"] = json!(true);
    }
    if let Some(packages) = &args.packages {
        body["packages"] = packages_value(packages)?;
    }
    Ok(body)
}

async fn rollout(client: &Client, cx: &Context, args: RolloutArgs) -> Result<(), Failure> {
    let body = rollout_body(&args)?;
    let stream = opened(client, args.follow).await?;
    let accepted = client.update_fleet(&body).await?;
    rollout_started(client, cx, accepted, stream).await
}

/// A rollout was accepted: print it, or follow it to its end.
async fn rollout_started(
    client: &Client,
    cx: &Context,
    accepted: RolloutAccepted,
    stream: Option<tendhost_client::EventStream>,
) -> Result<(), Failure> {
    let Some(mut stream) = stream else {
        if cx.json {
            return output::json(&accepted);
        }
        crate::outln!(
            "rollout {} started: {} host(s) in {} batch(es)",
            accepted.rollout_id,
            accepted.hosts.len(),
            accepted.batches.len()
        );
        return Ok(());
    };
    let work = Work::Rollout {
        id: accepted.rollout_id.clone(),
        hosts: accepted.hosts.clone(),
        batches: accepted.batches.iter().map(|b| b.hosts.clone()).collect(),
    };
    follow::follow(&mut stream, &work, cx.json, cx.style).await?;
    rollout_outcome(client, cx, &accepted.rollout_id).await
}

/// A rollout changed (approve, cancel, resume): print it, or follow it to its end.
async fn rollout_changed(
    client: &Client,
    cx: &Context,
    rollout: Rollout,
    what: &str,
    stream: Option<tendhost_client::EventStream>,
) -> Result<(), Failure> {
    let Some(mut stream) = stream else {
        if cx.json {
            return output::json(&rollout);
        }
        crate::outln!("rollout {}: {what} ({})", rollout.id, name(&rollout.state));
        return Ok(());
    };
    if rollout.state == RolloutState::Running {
        let work = Work::Rollout {
            id: rollout.id.clone(),
            hosts: rollout.hosts.iter().map(|h| h.host.clone()).collect(),
            batches: rollout.batches.iter().map(|b| b.hosts.clone()).collect(),
        };
        follow::follow(&mut stream, &work, cx.json, cx.style).await?;
    }
    rollout_outcome(client, cx, &rollout.id).await
}

/// The rollout's end as the API tells it: a table of its hosts; exit 1 naming the failed ones.
async fn rollout_outcome(client: &Client, cx: &Context, id: &str) -> Result<(), Failure> {
    let rollout = client.get_rollout(id).await?;
    if !cx.json {
        let mut table = Table::new(&["HOST", "BATCH", "STATE", "JOB", "REASON"]);
        for host in &rollout.hosts {
            table.row(vec![
                host.host.clone(),
                host.batch.to_string(),
                cx.style.state(&name(&host.state)),
                or_dash(host.job_id.as_deref()),
                or_dash(host.reason.as_deref()),
            ]);
        }
        table.print(cx.style);
    }
    let failed: Vec<String> = rollout
        .hosts
        .iter()
        .filter(|host| host.state == RolloutHostState::Failed)
        .map(|host| match &host.reason {
            Some(reason) => format!("{} ({reason})", host.host),
            None => host.host.clone(),
        })
        .collect();
    if !failed.is_empty() {
        return Err(Failure::failed(format!(
            "rollout {id} {}: failed host(s): {}",
            name(&rollout.state),
            failed.join(", ")
        )));
    }
    if rollout.state != RolloutState::Completed {
        return Err(Failure::failed(format!(
            "rollout {id} ended {}",
            name(&rollout.state)
        )));
    }
    Ok(())
}

async fn rollouts(client: &Client, cx: &Context, state: Option<String>) -> Result<(), Failure> {
    let state = match &state {
        Some(text) => Some(parse_wire::<RolloutState>("--state", text)?),
        None => None,
    };
    let rollouts = client
        .all_rollouts(&RolloutListQuery {
            state,
            ..RolloutListQuery::default()
        })
        .await?;
    if cx.json {
        return output::json(&rollouts);
    }
    let mut table = Table::new(&[
        "ID",
        "KIND",
        "STATE",
        "HOSTS",
        "SUCCEEDED",
        "FAILED",
        "CREATED",
    ]);
    for rollout in &rollouts {
        table.row(vec![
            rollout.id.clone(),
            name(&rollout.kind),
            cx.style.state(&name(&rollout.state)),
            rollout.n_hosts.to_string(),
            rollout.counts.succeeded.to_string(),
            rollout.counts.failed.to_string(),
            short_time(&rollout.created_at),
        ]);
    }
    table.print(cx.style);
    Ok(())
}

async fn schedules(client: &Client, cx: &Context) -> Result<(), Failure> {
    let schedules = client.list_schedules().await?.data;
    if cx.json {
        return output::json(&schedules);
    }
    let mut table = Table::new(&[
        "NAME",
        "CRON",
        "ACTION",
        "PACKAGES",
        "STATE",
        "NEXT RUN",
        "LAST RUN",
        "LAST ROLLOUT",
    ]);
    for schedule in &schedules {
        table.row(vec![
            schedule.name.clone(),
            format!("{} ({})", schedule.cron, schedule.timezone),
            name(&schedule.action),
            packages_text(&schedule.packages),
            cx.style.state(schedule_state(schedule)),
            schedule
                .next_run
                .as_deref()
                .map_or_else(|| "-".to_owned(), short_time),
            schedule
                .last_run
                .as_deref()
                .map_or_else(|| "-".to_owned(), short_time),
            or_dash(schedule.last_rollout_id.as_deref()),
        ]);
    }
    table.print(cx.style);
    Ok(())
}

fn schedule_state(schedule: &Schedule) -> &'static str {
    if !schedule.enabled {
        "disabled"
    } else if schedule.paused {
        "paused"
    } else {
        "active"
    }
}

fn packages_text(packages: &Packages) -> String {
    match packages {
        Packages::All => "all".to_owned(),
        Packages::Security => "security".to_owned(),
        Packages::Names(names) => names.join(","),
    }
}

/// A schedule paused or resumed: one line, or its JSON.
fn schedule_changed(cx: &Context, schedule: &Schedule, what: &str) -> Result<(), Failure> {
    if cx.json {
        return output::json(schedule);
    }
    let next = schedule
        .next_run
        .as_deref()
        .map_or_else(|| "-".to_owned(), short_time);
    crate::outln!("schedule {}: {what} (next run {next})", schedule.name);
    Ok(())
}

async fn jobs(client: &Client, cx: &Context, args: JobsArgs) -> Result<(), Failure> {
    let query = JobListQuery {
        host: args.host,
        state: args
            .state
            .as_deref()
            .map(|s| parse_wire("--state", s))
            .transpose()?,
        kind: args
            .kind
            .as_deref()
            .map(|k| parse_wire("--kind", k))
            .transpose()?,
        ..JobListQuery::default()
    };
    let jobs = client.all_jobs(&query).await?;
    if cx.json {
        return output::json(&jobs);
    }
    let mut table = Table::new(&["ID", "HOST", "KIND", "STATE", "CREATED", "SUMMARY"]);
    for job in &jobs {
        table.row(vec![
            job.id.clone(),
            job.host.clone(),
            name(&job.kind),
            cx.style.state(&name(&job.state)),
            short_time(&job.created_at),
            or_dash(job.summary.as_deref()),
        ]);
    }
    table.print(cx.style);
    Ok(())
}

/// `logs JOB [--follow]`: the job's log; following, its new lines as they come, until it ends.
async fn logs(client: &Client, cx: &Context, id: &str, follow: bool) -> Result<(), Failure> {
    let job = client.get_job(id).await?;
    let running = matches!(job.summary.state, JobState::Queued | JobState::Running);
    if !follow || !running {
        if cx.json {
            return output::json(&job.log);
        }
        for line in &job.log {
            crate::outln!("{}", line.line);
        }
        return Ok(());
    }
    // The whole output of the job from the event log (`since=0`, this host's output only):
    // the lines so far, then the live ones, with no gap between what was read and what comes.
    let options = StreamOptions {
        since: Some(0),
        hosts: vec![job.summary.host.clone()],
        types: vec!["job_output".to_owned(), "job_finished".to_owned()],
        ..StreamOptions::default()
    };
    let mut stream = client.events(options).await?;
    loop {
        let received = stream.next().await?;
        match &received.message {
            Some(StreamMessage::Event(message)) => match &message.event {
                EventPayload::JobOutput { job_id, line, .. } if job_id == id => {
                    if cx.json {
                        crate::outln!("{}", received.text);
                    } else {
                        crate::outln!("{line}");
                    }
                }
                EventPayload::JobFinished { job_id, .. } if job_id == id => {
                    if cx.json {
                        crate::outln!("{}", received.text);
                    }
                    return Ok(());
                }
                _ => {}
            },
            Some(StreamMessage::Control(control)) => {
                eprintln!("tendhost: the stream says {control:?}; some lines may be missing");
            }
            None => {}
        }
    }
}

/// `events`: the stream, one line per message (`--json`: as the daemon sent it).
async fn events(client: &Client, cx: &Context, args: EventsArgs) -> Result<(), Failure> {
    let options = StreamOptions {
        since: args.since,
        hosts: args.host,
        types: args.types,
        ..StreamOptions::default()
    };
    let mut stream = client.events(options).await?;
    loop {
        let received = stream.next().await?;
        if cx.json {
            crate::outln!("{}", received.text);
            continue;
        }
        match serde_json::from_str::<Value>(&received.text) {
            Ok(Value::Object(mut fields)) => {
                let seq = fields
                    .remove("seq")
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                let time = fields
                    .remove("time")
                    .and_then(|v| v.as_str().map(short_time))
                    .unwrap_or_default();
                let kind = fields
                    .remove("type")
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let rest: Vec<String> = fields
                    .into_iter()
                    .map(|(key, value)| match value {
                        Value::String(text) => format!("{key}={text}"),
                        other => format!("{key}={other}"),
                    })
                    .collect();
                crate::outln!(
                    "{seq:>6} {time} {} {}",
                    cx.style.bold(&kind),
                    rest.join(" ")
                );
            }
            _ => crate::outln!("{}", received.text),
        }
    }
}

/// A flag's value as a wire enum (`--state pending_updates`), or a usage error listing why.
fn parse_wire<T: serde::de::DeserializeOwned>(flag: &str, text: &str) -> Result<T, Failure> {
    serde_json::from_value(Value::String(text.to_owned()))
        .map_err(|err| Failure::usage(format!("{flag} {text:?}: {err}")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tendhost_api::schedules::Packages;

    use super::{approve_after_value, packages_value};

    #[test]
    fn packages_and_approve_after_have_the_wire_shapes() {
        assert_eq!(packages_value("security").unwrap(), json!("security"));
        assert_eq!(packages_value("all").unwrap(), json!("all"));
        let names = packages_value("openssl, curl").unwrap();
        assert_eq!(names, json!(["openssl", "curl"]));
        assert_eq!(
            serde_json::from_value::<Packages>(names).unwrap(),
            Packages::Names(vec!["openssl".to_owned(), "curl".to_owned()])
        );
        assert!(packages_value("openssl,,curl").is_err());
        // As gates' `ApproveAfter`: "canary" or the batch index as a number.
        assert_eq!(approve_after_value("canary").unwrap(), json!("canary"));
        assert_eq!(approve_after_value("1").unwrap(), json!(1));
        assert!(approve_after_value("-1").is_err());
        assert!(approve_after_value("first").is_err());
    }
}
