//! tendhost as a service: the unit `dist/tendhost.service` passes `systemd-analyze verify`
//! (with no warning), the daemon reports `READY=1`, `RELOADING=1` and `STOPPING=1` on a notify
//! socket the test creates, SIGHUP reloads the config (hosts added, removed once their job
//! ends, changed; schedules; notifiers, to a webhook receiver the test starts; a broken file
//! changes nothing and says where), and the Debian package (built by `scripts/package-deb`; `scripts/test` builds it
//! once and names it in `TENDHOST_TEST_DEB`) installs with `dpkg -i` in a fleet container,
//! where its config passes `check-config` as the `tendhost` user.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tendhost_api::jobs::JobState;
use tendhost_tests::cli;
use tendhost_tests::daemon::daemon_binary;
use tendhost_tests::fleet::Fleet;
use tendhost_tests::http::api;
use tendhost_tests::wait::{self, WAIT_DEADLINE};

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository")
        .to_path_buf()
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    // A root with what the unit names: the binary, /bin/kill, the man page of
    // `Documentation=`, and systemd's own units (the targets it orders against).
    let root = tempfile::tempdir().unwrap();
    let path = |rel: &str| root.path().join(rel);
    for dir in [
        "usr/bin",
        "usr/lib/systemd",
        "etc/systemd/system",
        "usr/share/man/man1",
    ] {
        std::fs::create_dir_all(path(dir)).unwrap();
    }
    std::os::unix::fs::symlink("usr/bin", path("bin")).unwrap();
    std::fs::copy(daemon_binary(), path("usr/bin/tendhost")).unwrap();
    std::fs::copy("/usr/bin/kill", path("usr/bin/kill")).unwrap();
    let status = Command::new("cp")
        .args(["-a", "/usr/lib/systemd/system"])
        .arg(path("usr/lib/systemd/"))
        .status()
        .expect("cp");
    assert!(
        status.success(),
        "copying /usr/lib/systemd/system (Debian's systemd package)"
    );
    let man = Command::new(daemon_binary()).arg("man").output().unwrap();
    assert!(man.status.success());
    std::fs::write(path("usr/share/man/man1/tendhost.1"), man.stdout).unwrap();
    std::fs::copy(
        repo().join("dist/tendhost.service"),
        path("etc/systemd/system/tendhost.service"),
    )
    .unwrap();

    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .arg("/etc/systemd/system/tendhost.service")
        .env("MANPATH", path("usr/share/man"))
        .output()
        .expect("systemd-analyze (Debian's systemd package; scripts/test installs it)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify warns:\n{stderr}"
    );
}

/// The next datagram on `socket`, as text.
fn next_notification(socket: &UnixDatagram) -> String {
    let mut buf = [0_u8; 4096];
    let n = socket
        .recv(&mut buf)
        .unwrap_or_else(|err| panic!("no notification within {WAIT_DEADLINE:?}: {err}"));
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_stopping_are_reported_on_the_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(WAIT_DEADLINE)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("tendhost.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nbind = \"127.0.0.1:{port}\"\nlog_level = \"warn\"\ndata_dir = \"{}\"\n\
             check_on_start = false\n\n[daemon.auth]\nenabled = false\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut daemon = cli::command(&["--config", config.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon");

    let ready = tokio::task::block_in_place(|| next_notification(&socket));
    assert!(ready.lines().any(|line| line == "READY=1"), "{ready:?}");
    assert!(
        ready.contains(&format!("STATUS=listening on http://127.0.0.1:{port}")),
        "{ready:?}"
    );
    // Ready means listening: the API answers at once.
    api(&format!("http://127.0.0.1:{port}"))
        .health()
        .await
        .expect("/health after READY=1");

    let pid = daemon.id().expect("running").to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stopping = tokio::task::block_in_place(|| next_notification(&socket));
    assert!(
        stopping.lines().any(|line| line == "STOPPING=1"),
        "{stopping:?}"
    );
    let status = wait::within("the daemon exiting after SIGTERM", daemon.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
}

/// The `.deb`: `TENDHOST_TEST_DEB` (scripts/test), else built here with the dev profile.
fn deb_package(scratch: &Path) -> PathBuf {
    if let Some(deb) = std::env::var_os("TENDHOST_TEST_DEB") {
        return PathBuf::from(deb);
    }
    let output = Command::new(repo().join("scripts/package-deb"))
        .args(["--profile", "dev", "--output"])
        .arg(scratch)
        .output()
        .expect("run scripts/package-deb");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "scripts/package-deb failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(stdout.trim().lines().last().expect("the package's path"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deb_installs_in_a_fleet_container_and_its_config_checks() {
    let Some(fleet) = Fleet::builder().apt(1).start().await else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let deb = tokio::task::block_in_place(|| deb_package(scratch.path()));
    let host = &fleet.hosts()[0];
    let copied = Command::new("docker")
        .arg("cp")
        .arg(&deb)
        .arg(format!("{}:/root/tendhost.deb", host.name()))
        .status()
        .unwrap();
    assert!(copied.success(), "docker cp {}", deb.display());

    let installed = host.exec(&["dpkg", "-i", "/root/tendhost.deb"]).await;
    assert!(
        installed.success(),
        "dpkg -i:\n{}{}",
        installed.stdout,
        installed.stderr
    );
    let listing = host
        .sh_ok(
            "stat -c '%n %U:%G %a' /usr/bin/tendhost /usr/lib/systemd/system/tendhost.service \
             /etc/tendhost/tendhost.toml /var/lib/tendhost",
        )
        .await;
    for expected in [
        "/usr/bin/tendhost root:root 755",
        "/usr/lib/systemd/system/tendhost.service root:root 644",
        "/etc/tendhost/tendhost.toml root:tendhost 640",
        "/var/lib/tendhost tendhost:tendhost 700",
    ] {
        assert!(
            listing.lines().any(|line| line == expected),
            "{expected:?} not in:\n{listing}"
        );
    }
    let unit = host
        .exec_ok(&["cat", "/usr/lib/systemd/system/tendhost.service"])
        .await;
    assert_eq!(
        unit,
        std::fs::read_to_string(repo().join("dist/tendhost.service")).unwrap()
    );
    assert!(
        host.exec_ok(&["grep", "^data_dir", "/etc/tendhost/tendhost.toml"])
            .await
            .contains("\"/var/lib/tendhost\""),
    );

    // As the service runs it: the tendhost user, the unit's environment.
    let check = host
        .exec(&[
            "runuser",
            "-u",
            "tendhost",
            "--",
            "env",
            "TENDHOST_DATA_DIR=/var/lib/tendhost",
            "tendhost",
            "--config",
            "/etc/tendhost/tendhost.toml",
            "check-config",
        ])
        .await;
    assert!(
        check.success(),
        "check-config:\n{}{}",
        check.stdout,
        check.stderr
    );
    assert!(check.stdout.contains("localhost"), "{}", check.stdout);
    let as_root = host
        .exec(&[
            "tendhost",
            "--config",
            "/etc/tendhost/tendhost.toml",
            "check-config",
        ])
        .await;
    assert!(
        as_root.success(),
        "check-config:\n{}{}",
        as_root.stdout,
        as_root.stderr
    );
    let man = host
        .exec(&[
            "sh",
            "-c",
            "zcat /usr/share/man/man1/tendhost.1.gz | grep -c rollout",
        ])
        .await;
    assert!(man.success(), "{}{}", man.stdout, man.stderr);
}

/// A daemon config with loopback SSH hosts `(name, port, tag)` (auth off, no check at start).
fn hosts_config(hosts: &[(&str, u16, &str)]) -> String {
    let mut text = String::from(
        "[daemon]\nlog_level = \"info\"\ncheck_on_start = false\n\n[daemon.auth]\nenabled = false\n\n\
         [defaults]\nconnect_timeout = \"5m\"\nknown_hosts = \"accept-new\"\n",
    );
    for (name, port, tag) in hosts {
        text.push_str(&format!(
            "\n[[host]]\nname = \"{name}\"\naddr = \"127.0.0.1\"\nport = {port}\ntags = [\"{tag}\"]\n"
        ));
    }
    text
}

/// The next `config_reloaded` or `config_reload_failed` event on `stream`.
async fn next_reload_event(
    stream: &mut tendhost_client::EventStream,
) -> tendhost_api::events::EventPayload {
    use tendhost_api::events::{EventPayload, StreamMessage};
    wait::within("a config_reloaded or config_reload_failed event", async {
        loop {
            let received = stream.next().await.expect("event stream");
            if let Some(StreamMessage::Event(message)) = received.message
                && matches!(
                    message.event,
                    EventPayload::ConfigReloaded { .. } | EventPayload::ConfigReloadFailed { .. }
                )
            {
                return message.event;
            }
        }
    })
    .await
}

async fn host_names(client: &tendhost_client::Client) -> Vec<String> {
    let hosts = client
        .all_hosts(&tendhost_api::hosts::HostListQuery::default())
        .await
        .expect("GET /hosts");
    hosts.into_iter().map(|host| host.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_hosts_and_a_broken_file_changes_nothing() {
    use tendhost_api::events::EventPayload;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tendhost.toml");
    let closed = crate::api_support::closed_port();
    // SSH to it waits for a banner that never comes: a job there runs while it lives.
    let silent = crate::api_support::silent_listener();
    let silent_port = silent.local_addr().unwrap().port();
    std::fs::write(
        &config,
        hosts_config(&[
            ("keep", closed, "a"),
            ("gone", closed, "a"),
            ("busy", silent_port, "a"),
        ]),
    )
    .unwrap();
    let mut daemon =
        tendhost_tests::daemon::DaemonProcess::start(&config, &dir.path().join("data"));
    let client = api(&daemon.base_url);
    let mut stream = client
        .events(tendhost_client::StreamOptions::default())
        .await
        .expect("event stream");
    let busy_job = client.check_host("busy").await.expect("check busy").job_id;
    assert_eq!(host_names(&client).await, ["busy", "gone", "keep"]);

    // Added, removed (the busy one keeps its job), changed.
    std::fs::write(
        &config,
        hosts_config(&[("keep", closed, "b"), ("added", closed, "a")]),
    )
    .unwrap();
    daemon.signal("HUP");
    assert_eq!(
        next_reload_event(&mut stream).await,
        EventPayload::ConfigReloaded {
            added: vec!["added".to_owned()],
            removed: vec!["busy".to_owned(), "gone".to_owned()],
            changed: vec!["keep".to_owned()],
        }
    );
    assert_eq!(host_names(&client).await, ["added", "busy", "keep"]);
    assert_eq!(client.get_host("keep").await.unwrap().tags, ["b"]);
    let job = client.get_job(&busy_job).await.unwrap();
    assert_eq!(
        job.summary.state,
        JobState::Running,
        "the busy host's job was cut short"
    );
    // Its job ends (the listener goes): then the host goes.
    drop(silent);
    wait::until(
        "the removed busy host disappearing after its job",
        || async {
            let names = host_names(&client).await;
            if names.iter().any(|name| name == "busy") {
                Err(format!("{names:?}"))
            } else {
                Ok(())
            }
        },
    )
    .await;
    assert_ne!(
        client.get_job(&busy_job).await.unwrap().summary.state,
        JobState::Running
    );

    // A broken file: nothing changes, every problem with its position.
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{good}\n[[host]]\nname = \"bad one\"\naddr = \"127.0.0.1\"\nport = 70000\n"),
    )
    .unwrap();
    daemon.signal("HUP");
    let EventPayload::ConfigReloadFailed { errors } = next_reload_event(&mut stream).await else {
        panic!("a broken file was applied");
    };
    let file = config.display().to_string();
    assert!(errors.len() >= 2, "{errors:?}");
    for error in &errors {
        let position = error
            .strip_prefix(&format!("{file}:"))
            .unwrap_or_else(|| panic!("{error}"));
        let mut parts = position.splitn(3, ':');
        let (line, col) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(
            line.parse::<u32>().is_ok() && col.parse::<u32>().is_ok(),
            "{error}"
        );
    }
    assert!(errors.iter().any(|e| e.contains("port")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("name")), "{errors:?}");
    assert_eq!(host_names(&client).await, ["added", "keep"]);
    for error in &errors {
        assert!(
            daemon.wait_for_log(error).is_some(),
            "{error} not logged:\n{}",
            daemon.log.join("\n")
        );
    }
    daemon.signal("TERM");
    assert!(daemon.wait_exit("SIGTERM").success());
}

/// `[[schedule]]` tables for `hosts_config`: `(name, cron)`, each a check of every host.
fn schedules_config(schedules: &[(&str, &str)]) -> String {
    let mut text = String::new();
    for (name, cron) in schedules {
        text.push_str(&format!(
            "\n[[schedule]]\nname = \"{name}\"\ncron = \"{cron}\"\ntimezone = \"UTC\"\naction = \"check\"\n"
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_notifiers() {
    use crate::notify::{Mode, Receiver, webhook};
    use tendhost_api::events::EventPayload;
    let receiver = Receiver::start(Mode::Answer).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tendhost.toml");
    let closed = crate::api_support::closed_port();
    let hosts = hosts_config(&[("keep", closed, "a")]);
    let hook = |name: &str| webhook(name, &format!("{}/{name}", receiver.url), "s-reload", "");
    std::fs::write(&config, format!("{hosts}{}", hook("before"))).unwrap();
    let mut daemon =
        tendhost_tests::daemon::DaemonProcess::start(&config, &dir.path().join("data"));
    let client = api(&daemon.base_url);
    let mut stream = client
        .events(tendhost_client::StreamOptions::default())
        .await
        .expect("event stream");
    let sent = client
        .test_notification("before")
        .await
        .expect("POST /notifications/before/test");
    assert_eq!(sent.status, "delivered", "{sent:?}");
    receiver.wait_for("/before", 1).await;

    std::fs::write(&config, format!("{hosts}{}", hook("after"))).unwrap();
    daemon.signal("HUP");
    let reloaded = next_reload_event(&mut stream).await;
    assert!(
        matches!(
            &reloaded,
            EventPayload::ConfigReloaded { added, removed, changed }
                if added.is_empty() && removed.is_empty() && changed.is_empty()
        ),
        "no host changed: {reloaded:?}"
    );
    let sent = client
        .test_notification("after")
        .await
        .expect("POST /notifications/after/test: the reloaded notifier");
    assert_eq!(sent.status, "delivered", "{sent:?}");
    let [seen] = receiver.wait_for("/after", 1).await.try_into().unwrap();
    assert_eq!(seen.json()["notifier"], "after");
    let Err(tendhost_client::Error::Api { status, .. }) = client.test_notification("before").await
    else {
        panic!("the removed notifier still answers");
    };
    assert_eq!(status, 404);
    assert_eq!(receiver.wait_for("/before", 1).await.len(), 1);
    // A file without notifiers leaves none.
    std::fs::write(&config, &hosts).unwrap();
    daemon.signal("HUP");
    assert!(matches!(
        next_reload_event(&mut stream).await,
        EventPayload::ConfigReloaded { .. }
    ));
    let Err(tendhost_client::Error::Api { status, .. }) = client.test_notification("after").await
    else {
        panic!("the notifier removed with [[notify]] still answers");
    };
    assert_eq!(status, 404);
    daemon.signal("TERM");
    assert!(daemon.wait_exit("SIGTERM").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_schedules_and_a_kept_schedule_stays_paused() {
    use tendhost_api::events::EventPayload;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tendhost.toml");
    let closed = crate::api_support::closed_port();
    let hosts = hosts_config(&[("keep", closed, "a")]);
    std::fs::write(
        &config,
        format!(
            "{hosts}{}",
            schedules_config(&[("nightly", "0 3 * * *"), ("weekly", "0 4 * * sun")])
        ),
    )
    .unwrap();
    let mut daemon =
        tendhost_tests::daemon::DaemonProcess::start(&config, &dir.path().join("data"));
    let client = api(&daemon.base_url);
    let mut stream = client
        .events(tendhost_client::StreamOptions::default())
        .await
        .expect("event stream");
    let paused = client
        .pause_schedule("nightly")
        .await
        .expect("pause nightly");
    assert!(paused.paused && paused.next_run.is_none(), "{paused:?}");

    // nightly changes its time, weekly goes, hourly comes.
    std::fs::write(
        &config,
        format!(
            "{hosts}{}",
            schedules_config(&[("nightly", "30 4 * * *"), ("hourly", "@hourly")])
        ),
    )
    .unwrap();
    daemon.signal("HUP");
    assert!(matches!(
        next_reload_event(&mut stream).await,
        EventPayload::ConfigReloaded { .. }
    ));
    let schedules = client.list_schedules().await.expect("GET /schedules").data;
    let names: Vec<&str> = schedules.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["nightly", "hourly"], "{schedules:?}");
    assert_eq!(schedules[0].cron, "30 4 * * *");
    assert!(
        schedules[0].paused && schedules[0].next_run.is_none(),
        "the kept schedule lost its pause: {:?}",
        schedules[0]
    );
    assert!(
        !schedules[1].paused && schedules[1].next_run.is_some(),
        "the new schedule is not running: {:?}",
        schedules[1]
    );
    let Err(tendhost_client::Error::Api { status, .. }) = client.get_schedule("weekly").await
    else {
        panic!("the removed schedule is still there");
    };
    assert_eq!(status, 404);
    // The new one runs when asked, through the reloaded runner.
    let run = client.run_schedule("hourly").await.expect("run hourly");
    tendhost_tests::http::wait_rollout_ended(&client, &run.rollout_id).await;
    assert_eq!(
        client.get_schedule("hourly").await.unwrap().last_rollout_id,
        Some(run.rollout_id)
    );
    daemon.signal("TERM");
    assert!(daemon.wait_exit("SIGTERM").success());
}
