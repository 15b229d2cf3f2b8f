//! The `tendhost` command line as a client, run as the built binary against a real daemon:
//! exit codes (bad flags 2, a wrong token 3, a daemon that is down 3 naming the URL), the
//! connection found through `--config` alone (bind address and bootstrap token file), the
//! completions and the man page, and on the Docker fleet: `rollout --follow` of four hosts to
//! its end (upgraded, verified out of band), a failing host (exit 1 naming it), `--json`
//! against the API's own answers, and `logs --follow` printing a running update's lines as
//! they come.

use std::process::Stdio;

use clap::CommandFactory;
use serde_json::Value;
use tendhost_api::jobs::JobState;
use tendhost_tests::cli::{self, CliOutput, fleet_config};
use tendhost_tests::daemon::spawn_app;
use tendhost_tests::fleet::{Fleet, Host, Pkg};
use tendhost_tests::http::{api, get_json, installed_version};
use tendhost_tests::wait;
use tokio::io::{AsyncBufReadExt, BufReader};

/// `tendhost --url URL ARGS...`.
async fn at(url: &str, args: &[&str]) -> CliOutput {
    let mut all = vec!["--url", url];
    all.extend_from_slice(args);
    cli::run(&all, &[]).await
}

/// Every subcommand name of the command line, nested ones as `parent child`.
fn subcommands() -> Vec<String> {
    let command = tendhost_cli::Cli::command();
    let mut names = Vec::new();
    for sub in command.get_subcommands() {
        names.push(sub.get_name().to_owned());
        for nested in sub.get_subcommands() {
            names.push(nested.get_name().to_owned());
        }
    }
    names
}

#[tokio::test]
async fn cli_completions_and_man_page_are_generated_and_name_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let names = subcommands();
    assert!(names.len() >= 20, "{names:?}");
    for (args, file) in [
        (vec!["completions", "bash"], "tendhost.bash"),
        (vec!["completions", "zsh"], "_tendhost"),
        (vec!["completions", "fish"], "tendhost.fish"),
        (vec!["man"], "tendhost.1"),
    ] {
        let output = cli::run(&args, &[]).await;
        assert_eq!(output.code, Some(0), "{args:?}: {}", output.show());
        let path = dir.path().join(file);
        std::fs::write(&path, &output.stdout).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.trim().is_empty(), "{file} is empty");
        let missing: Vec<&String> = names
            .iter()
            .filter(|name| !text.contains(name.as_str()))
            .collect();
        assert!(missing.is_empty(), "{file} does not mention {missing:?}");
    }
    let man = cli::run(&["man"], &[]).await.stdout;
    assert!(
        man.starts_with(".ie") || man.contains(".TH"),
        "not roff: {}",
        &man[..200.min(man.len())]
    );
    let help = cli::run(&["--help"], &[]).await;
    for text in [&man, &help.stdout] {
        for code in [
            "0  everything asked for succeeded",
            "3  the daemon cannot be reached",
        ] {
            assert!(
                text.contains(code),
                "exit codes missing: {code:?} in\n{text}"
            );
        }
    }
}

/// The config file of a daemon with auth on (its bootstrap token), bound to a free port.
/// Output into a pipe its reader has closed (`tendhost default-config | head -1`): each command
/// ends quietly with status 0, never with a panic.
#[tokio::test]
async fn cli_output_into_a_closed_pipe_ends_quietly() {
    for args in [
        &["default-config"][..],
        &["completions", "bash"],
        &["man"],
        &["token", "new", "ci", "--role", "read"],
    ] {
        let mut child = cli::command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tendhost");
        // The reader goes away before the first byte is written.
        drop(child.stdout.take());
        let output = wait::within(
            &format!("tendhost {args:?} ending"),
            child.wait_with_output(),
        )
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "tendhost {args:?}: {stderr}");
        assert_eq!(output.status.code(), Some(0), "tendhost {args:?}: {stderr}");
    }
}

fn auth_config(dir: &std::path::Path) -> (String, std::path::PathBuf) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = dir.join("tendhost.toml");
    std::fs::write(
        &path,
        format!(
            "[daemon]\nbind = \"127.0.0.1:{port}\"\nlog_level = \"warn\"\ndata_dir = \"{}\"\n\
             check_on_start = false\n\n[daemon.auth]\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    (format!("http://127.0.0.1:{port}"), path)
}

#[tokio::test]
async fn cli_finds_the_daemon_through_its_config_and_exits_2_or_3_on_usage_auth_and_network() {
    let dir = tempfile::tempdir().unwrap();
    let (url, config) = auth_config(dir.path());
    let config_arg = config.to_str().unwrap();
    let mut daemon = cli::command(&["--config", config_arg])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon");
    let probe = api(&url);
    wait::until("the daemon answering /health", || async {
        probe.health().await.map_err(|err| err.to_string())
    })
    .await;

    // Nothing but --config: bind address and bootstrap token come from the file.
    let hosts = cli::run(&["--config", config_arg, "--json", "hosts"], &[]).await;
    assert_eq!(hosts.code, Some(0), "{}", hosts.show());
    assert_eq!(
        serde_json::from_str::<Value>(&hosts.stdout).unwrap(),
        serde_json::json!([])
    );

    // A wrong token: exit 3, the API's code and message on one line.
    for env in [
        [("TENDHOST_TOKEN", "th_wrong")],
        [("TENDHOST_URL", url.as_str())],
    ] {
        let args = ["--config", config_arg, "--token", "th_not_a_token", "jobs"];
        let wrong = cli::run(&args, &env).await;
        assert_eq!(wrong.code, Some(3), "{}", wrong.show());
        let line = wrong.stderr.trim();
        assert!(
            line.starts_with("tendhost: unauthorized (401): ") && !line.contains('\n'),
            "{line:?}"
        );
    }

    // Bad flags and bad values: exit 2, before anything is sent.
    for args in [
        vec!["hosts", "--bogus"],
        vec!["update"],
        vec!["check"],
        vec!["rollout", "--max-failures", "12x"],
        vec!["rollout", "--batch", "0"],
        vec!["hosts", "--state", "asleep"],
        vec!["completions", "tcsh"],
    ] {
        let mut all = vec!["--config", config_arg];
        all.extend_from_slice(&args);
        let bad = cli::run(&all, &[]).await;
        assert_eq!(bad.code, Some(2), "{args:?}: {}", bad.show());
        assert!(!bad.stderr.trim().is_empty(), "{args:?}: no message");
    }
    let unknown = cli::run(&["--config", config_arg, "host", "no-such-host"], &[]).await;
    assert_eq!(unknown.code, Some(2), "{}", unknown.show());
    assert!(unknown.stderr.contains("not_found"), "{}", unknown.show());
    let no_config = cli::run(&["--config", "/nonexistent/tendhost.toml", "hosts"], &[]).await;
    assert_eq!(no_config.code, Some(2), "{}", no_config.show());
    assert!(
        no_config.stderr.contains("/nonexistent/tendhost.toml"),
        "{}",
        no_config.show()
    );

    // The daemon down: exit 3 naming the URL.
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();
    let down = cli::run(&["--config", config_arg, "hosts"], &[]).await;
    assert_eq!(down.code, Some(3), "{}", down.show());
    assert!(
        down.stderr.contains(&format!("cannot reach {url}/hosts"))
            && down.stderr.contains("refused"),
        "{}",
        down.show()
    );
}

/// The fleet's hosts, tagged `web`, managed by an in-process daemon.
async fn web_fleet(n_hosts: usize, pkg: &Pkg) -> Option<(Fleet, tendhost_tests::daemon::TestApp)> {
    let fleet = Fleet::builder()
        .apt(n_hosts)
        .install(pkg.clone())
        .start()
        .await?;
    let hosts: Vec<&Host> = fleet.hosts().iter().collect();
    let app = spawn_app(&fleet_config(&fleet, &hosts, &["web"])).await;
    Some((fleet, app))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_rollout_follow_upgrades_four_hosts_then_names_a_failing_one_and_json_is_the_apis() {
    let Some((fleet, app)) = web_fleet(4, &Pkg::new("th-cli", "1.0")).await else {
        return;
    };
    fleet
        .publish(&Pkg::new("th-cli", "1.1").postinst("echo th-cli configured"))
        .await;
    let url = app.base_url.as_str();

    let rollout = at(
        url,
        &["rollout", "--tag", "web", "--batch", "2", "--follow"],
    )
    .await;
    assert_eq!(rollout.code, Some(0), "{}", rollout.show());
    for host in fleet.hosts() {
        assert_eq!(
            installed_version(host, "th-cli").await,
            "1.1",
            "{}",
            host.name()
        );
        assert!(
            rollout.stdout.contains(host.name()),
            "{} not shown:\n{}",
            host.name(),
            rollout.show()
        );
    }
    assert!(rollout.stdout.contains("batch 1"), "{}", rollout.show());
    assert!(
        rollout.stdout.contains("th-cli configured"),
        "no job output:\n{}",
        rollout.show()
    );

    // --json is the API's answer: hosts (every page as one array), host, jobs.
    let hosts = at(url, &["--json", "hosts"]).await;
    assert_eq!(hosts.code, Some(0), "{}", hosts.show());
    let listed = get_json(url, "/hosts?per_page=200").await;
    assert_eq!(
        serde_json::from_str::<Value>(&hosts.stdout).unwrap(),
        listed["data"]
    );
    let first = fleet.hosts()[0].name();
    let host = at(url, &["--json", "host", first]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&host.stdout).unwrap(),
        get_json(url, &format!("/hosts/{first}")).await
    );
    let jobs = at(url, &["--json", "jobs"]).await;
    let listed = get_json(url, "/jobs?per_page=200").await;
    let jobs_json: Value = serde_json::from_str(&jobs.stdout).unwrap();
    assert_eq!(jobs_json, listed["data"]);
    assert!(jobs_json.as_array().unwrap().len() >= 4, "{jobs_json:#}");
    let jobs_of_first = at(url, &["--json", "jobs", "--host", first]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&jobs_of_first.stdout).unwrap(),
        get_json(url, &format!("/jobs?per_page=200&host={first}")).await["data"]
    );

    // One host made to fail: exit 1, naming it.
    let mut names: Vec<&str> = fleet.hosts().iter().map(Host::name).collect();
    names.sort_unstable();
    let failing = names[2];
    fleet
        .host(failing)
        .exec_ok(&["touch", "/etc/th-fail"])
        .await;
    fleet
        .publish(&Pkg::new("th-cli", "1.2").postinst("if [ -e /etc/th-fail ]; then exit 1; fi"))
        .await;
    let rollout = at(
        url,
        &[
            "rollout",
            "--tag",
            "web",
            "--batch",
            "2",
            "--max-failures",
            "1",
            "--follow",
        ],
    )
    .await;
    assert_eq!(rollout.code, Some(1), "{}", rollout.show());
    let last = rollout.stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.contains(failing) && last.contains("failed host"),
        "{}",
        rollout.show()
    );
    for other in names.iter().filter(|name| **name != failing) {
        assert!(!last.contains(other), "{other} named as failed: {last}");
        assert_eq!(installed_version(fleet.host(other), "th-cli").await, "1.2");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_logs_follow_prints_a_running_updates_lines_as_they_come() {
    let Some((fleet, app)) = web_fleet(1, &Pkg::new("th-logs", "1.0")).await else {
        return;
    };
    // The upgrade prints a line, then waits for the test's go-ahead, then prints another.
    fleet
        .publish(&Pkg::new("th-logs", "1.1").postinst(
            "echo th-logs-before-go; while [ ! -e /tmp/th-go ]; do sleep 0.2; done; echo th-logs-after-go",
        ))
        .await;
    let host = &fleet.hosts()[0];
    let client = api(&app.base_url);
    let accepted = client
        .update_host(host.name(), &tendhost_api::hosts::UpdateRequest::default())
        .await
        .expect("update starts");

    let mut logs = cli::command(&["--url", &app.base_url, "logs", &accepted.job_id, "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tendhost logs --follow");
    let mut lines = BufReader::new(logs.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    wait::within(
        "logs --follow printing the line before the go-ahead",
        async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let done = line.contains("th-logs-before-go");
                seen.push(line);
                if done {
                    return;
                }
            }
            panic!("logs --follow ended before the first line: {seen:?}");
        },
    )
    .await;
    // The line came while the job is still running: it waits for the go-ahead.
    let job = client.get_job(&accepted.job_id).await.unwrap();
    assert_eq!(job.summary.state, JobState::Running, "{seen:?}");
    assert!(!seen.iter().any(|line| line.contains("th-logs-after-go")));
    host.exec_ok(&["touch", "/tmp/th-go"]).await;
    wait::within(
        "logs --follow printing the line after the go-ahead",
        async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let done = line.contains("th-logs-after-go");
                seen.push(line);
                if done {
                    return;
                }
            }
            panic!("logs --follow ended before the last line: {seen:?}");
        },
    )
    .await;
    let status = wait::within("logs --follow ending with the job", logs.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status}: {seen:?}");
    for marker in ["th-logs-before-go", "th-logs-after-go"] {
        let n_seen = seen.iter().filter(|line| line.contains(marker)).count();
        assert_eq!(n_seen, 1, "{marker} printed {n_seen} times: {seen:?}");
    }
    assert_eq!(installed_version(host, "th-logs").await, "1.1");
}
