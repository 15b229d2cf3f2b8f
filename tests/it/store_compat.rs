//! Stored-data compatibility: a database written by an earlier release reads back the same.
//!
//! `tests/data/store-compat/` holds what `scripts/make-store-fixture` made with the daemon at
//! commit 32574f8: `tendhost.sql` (an SQL dump of the database after real work: checks of this
//! machine as a `local` check-only host, a check that fails (a package manager this machine
//! lacks), a refused update, a runtime host added with `POST /hosts` that cannot be reached, a
//! fleet check and a dry-run fleet update) and
//! `expected.json` (what that daemon answered when started on the restored dump). Here the dump
//! is restored into a fresh data dir, the daemon under test starts on it, and every answer must
//! equal the recorded one: jobs with their logs, rollouts, hosts' recovered status and
//! inventory, and the WebSocket replay of every stored event. Nothing is masked: a restarted
//! daemon that checks nothing has no reason to change any of it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Map, Value};
use tendhost_tests::daemon::spawn_app_in;
use tendhost_tests::http::get_json;
use tokio_tungstenite::tungstenite::Message;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/store-compat")
        .join(name)
}

fn read(name: &str) -> String {
    let path = fixture(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// Fields that later releases added to answers about stored data, with the value an object
/// stored before them reads back with. Each is allowed only where the recording lacks it and
/// only with exactly that value; anything else the recording has must read back unchanged.
const ADDED_SINCE_THE_FIXTURE: &[(&str, &str)] = &[
    // Rollouts: package selection and schedules (issue 15); a rollout of the first release was
    // started through the API, by no token, and installed everything.
    ("deferred", "0"),
    ("packages", "\"all\""),
    ("trigger", "{\"api\":null}"),
    ("reboot", "null"),
];

/// Every place where `got` differs from `want`, as JSON paths with both values.
fn differences(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(want), Value::Object(got)) => {
            let keys: std::collections::BTreeSet<&String> = want.keys().chain(got.keys()).collect();
            let missing = Value::String("<missing>".to_owned());
            for key in keys {
                let (recorded, now) = (want.get(key), got.get(key));
                if let (None, Some(now)) = (recorded, now) {
                    let added = ADDED_SINCE_THE_FIXTURE.iter().any(|(name, value)| {
                        name == key && now == &serde_json::from_str::<Value>(value).unwrap()
                    });
                    if added {
                        continue;
                    }
                }
                differences(
                    &format!("{path}.{key}"),
                    recorded.unwrap_or(&missing),
                    now.unwrap_or(&missing),
                    out,
                );
            }
        }
        (Value::Array(want_items), Value::Array(got_items))
            if want_items.len() == got_items.len() =>
        {
            for (idx, (want, got)) in want_items.iter().zip(got_items).enumerate() {
                differences(&format!("{path}[{idx}]"), want, got, out);
            }
        }
        _ if want == got => {}
        _ => out.push(format!("{path}: recorded {want}, now {got}")),
    }
}

#[track_caller]
fn assert_same(what: &str, want: &Value, got: &Value) {
    let mut found = Vec::new();
    differences(what, want, got, &mut found);
    assert!(
        found.is_empty(),
        "stored data reads back differently ({} places):\n{}",
        found.len(),
        found
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

async fn ws_messages(addr: std::net::SocketAddr, query: &str, n_messages: usize) -> Vec<Value> {
    let url = format!("ws://{addr}/ws/events{query}");
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_or_else(|err| panic!("WebSocket handshake with {url} failed: {err}"));
    let mut messages = Vec::new();
    while messages.len() < n_messages {
        let frame = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no WebSocket message for 60 s after {} of {n_messages}",
                    messages.len()
                )
            })
            .expect("the stream ended before the replay did")
            .expect("WebSocket error");
        match frame {
            Message::Text(text) => messages.push(
                serde_json::from_str(text.as_str())
                    .unwrap_or_else(|err| panic!("not JSON ({err}): {text}")),
            ),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
    messages
}

/// `GET {prefix}/{key}{suffix}` for every key of `recorded`, keyed the same way.
async fn each(base_url: &str, recorded: &Value, prefix: &str, suffix: &str) -> Value {
    let mut answers = Map::new();
    for key in recorded
        .as_object()
        .expect("a map of recorded answers")
        .keys()
    {
        let answer = get_json(base_url, &format!("{prefix}/{key}{suffix}")).await;
        answers.insert(key.clone(), answer);
    }
    Value::Object(answers)
}

#[tokio::test]
async fn database_of_the_previous_release_reads_back_identically() {
    let expected: Value = serde_json::from_str(&read("expected.json")).expect("expected.json");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("tendhost.toml"), read("tendhost.toml")).expect("config");
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).expect("data dir");
    {
        let db = rusqlite::Connection::open(data_dir.join(tendhost_store::DB_FILE)).expect("db");
        db.execute_batch(&read("tendhost.sql"))
            .expect("restore the dump");
    }
    let app = spawn_app_in(dir).await;
    let url = app.base_url.clone();

    let jobs = get_json(&url, "/jobs?per_page=200").await;
    assert!(
        jobs["data"].as_array().is_some_and(|jobs| jobs.len() > 5),
        "the fixture has jobs: {jobs}"
    );
    assert_same("/jobs", &expected["jobs"], &jobs);
    let job_details = each(&url, &expected["job_details"], "/jobs", "").await;
    assert_same("/jobs/{id}", &expected["job_details"], &job_details);
    let rollouts = get_json(&url, "/rollouts?per_page=200").await;
    assert_same("/rollouts", &expected["rollouts"], &rollouts);
    let rollout_details = each(&url, &expected["rollout_details"], "/rollouts", "").await;
    assert_same(
        "/rollouts/{id}",
        &expected["rollout_details"],
        &rollout_details,
    );
    let hosts = get_json(&url, "/hosts?per_page=200").await;
    assert_same("/hosts", &expected["hosts"], &hosts);
    let host_details = each(&url, &expected["host_details"], "/hosts", "").await;
    assert_same("/hosts/{name}", &expected["host_details"], &host_details);
    let inventories = each(&url, &expected["host_inventories"], "/hosts", "/inventory").await;
    assert_same(
        "/hosts/{name}/inventory",
        &expected["host_inventories"],
        &inventories,
    );

    let recorded = expected["ws_replay"].as_array().expect("ws_replay");
    let replay = Value::Array(ws_messages(app.addr, "?since=0", recorded.len()).await);
    assert_same("ws?since=0", &expected["ws_replay"], &replay);
    app.stop().await.expect("the daemon stops cleanly");
}
