//! Approval gates on real apt hosts of the Docker fleet, through the real binary with tokens
//! on: a rollout with `approve_after = "canary"` updates its canary and waits; it is still
//! `awaiting_approval` after a daemon restart; approving it (by the operator token, whose name
//! it records) updates the rest. A second rollout cancelled while it waits updates no host
//! but its canary, and a third one whose `approval_timeout` runs out is cancelled the same
//! way. Versions are read out of band (`docker exec`).

use serde_json::{Value, json};
use tendhost_tests::daemon::DaemonProcess;
use tendhost_tests::fleet::{Fleet, Pkg};
use tendhost_tests::http::installed_version;
use tendhost_tests::wait;

use crate::claims::{binary_dir, fleet_config, rollout_entry, sorted_hosts, stop_gracefully};

const PKG: &str = "th-gates";

/// A client of the daemon that sends the operator's token.
struct Operator {
    base_url: String,
    token: String,
}

impl Operator {
    async fn get(&self, path: &str) -> Value {
        wait::http_client()
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {path}: {err}"))
            .json()
            .await
            .unwrap_or_else(|err| panic!("GET {path} is not JSON: {err}"))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = wait::http_client()
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|err| panic!("POST {path}: {err}"));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Waits until rollout `id` is in `state`; returns it.
    async fn rollout_in(&self, id: &str, state: &str) -> Value {
        wait::until(&format!("rollout {id} becoming {state}"), || async {
            let rollout = self.get(&format!("/rollouts/{id}")).await;
            if rollout["state"] == state {
                Ok(rollout)
            } else {
                Err(format!("{rollout:#}"))
            }
        })
        .await
    }

    async fn start(&self, body: Value) -> String {
        let (status, accepted) = self.post("/fleet/update", body).await;
        assert_eq!(status, 202, "{accepted:#}");
        accepted["rollout_id"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn gates_approval_survives_a_restart_and_cancel_or_timeout_updates_no_other_host() {
    let Some(fleet) = Fleet::builder()
        .apt(3)
        .install(Pkg::new(PKG, "1.0"))
        .start()
        .await
    else {
        return;
    };
    let hosts = sorted_hosts(&fleet);
    let [canary, second, third] = hosts[..] else {
        panic!("three hosts expected");
    };
    let (token, hash) = tendhost_auth::new_token().expect("random token");
    let config = fleet_config(&fleet, &hosts, |_| String::new()).replacen(
        "\n[defaults]",
        &format!(
            "[daemon.auth]\ntokens = [{{ name = \"operator\", token_hash = \"{hash}\", role = \"operate\" }}]\n\n[defaults]"
        ),
        1,
    );
    let (_dir, config_path, data) = binary_dir(&config);
    let mut daemon = DaemonProcess::start(&config_path, &data);
    let operator = |daemon: &DaemonProcess| Operator {
        base_url: daemon.base_url.clone(),
        token: token.clone(),
    };
    fleet.publish_deb(&Pkg::new(PKG, "1.1")).await;

    // 1. The canary is updated; the rollout waits after it.
    let api = operator(&daemon);
    let (status, refused) = api
        .post(
            "/fleet/update",
            json!({"approve_after": "canary", "batch_size": 2}),
        )
        .await;
    assert_eq!(
        status, 422,
        "approve_after canary without canary hosts: {refused:#}"
    );
    assert_eq!(refused["error"]["details"]["field"], "approve_after");
    let first = api
        .start(json!({"canary": [canary.name()], "batch_size": 2, "approve_after": "canary"}))
        .await;
    let waiting = api.rollout_in(&first, "awaiting_approval").await;
    assert_eq!(
        waiting["awaiting_approval"]["after_batch"], 0,
        "{waiting:#}"
    );
    assert_eq!(waiting["approve_after"], "canary", "{waiting:#}");
    assert_eq!(rollout_entry(&waiting, canary.name())["state"], "succeeded");
    assert_eq!(installed_version(canary, PKG).await, "1.1");
    for host in [second, third] {
        assert_eq!(rollout_entry(&waiting, host.name())["state"], "pending");
        assert_eq!(installed_version(host, PKG).await, "1.0", "{}", host.name());
    }

    // 2. A restart: still waiting (not interrupted), nothing else updated.
    stop_gracefully(&mut daemon);
    let daemon = DaemonProcess::start(&config_path, &data);
    let api = operator(&daemon);
    let after_restart = api.get(&format!("/rollouts/{first}")).await;
    assert_eq!(
        after_restart["state"], "awaiting_approval",
        "{after_restart:#}"
    );
    assert_eq!(
        after_restart["awaiting_approval"],
        waiting["awaiting_approval"]
    );
    let listed = api.get("/rollouts?state=awaiting_approval").await;
    assert_eq!(listed["data"][0]["id"], first, "{listed:#}");
    for host in [second, third] {
        assert_eq!(installed_version(host, PKG).await, "1.0", "{}", host.name());
    }

    // 3. Approve: the rest is updated; the approval names the token.
    let (status, approved) = api
        .post(&format!("/rollouts/{first}/approve"), json!({}))
        .await;
    assert_eq!(status, 202, "{approved:#}");
    assert_eq!(approved["approved_by"], "operator", "{approved:#}");
    let (status, again) = api
        .post(&format!("/rollouts/{first}/approve"), json!({}))
        .await;
    assert_eq!(status, 409, "a second approval: {again:#}");
    assert_eq!(again["error"]["code"], "invalid_rollout_state");
    let done = api.rollout_in(&first, "completed").await;
    assert!(done["awaiting_approval"].is_null(), "{done:#}");
    for host in [canary, second, third] {
        assert_eq!(rollout_entry(&done, host.name())["state"], "succeeded");
        assert_eq!(installed_version(host, PKG).await, "1.1", "{}", host.name());
    }

    // 4. Cancel while waiting: only the canary has the new version.
    fleet.publish_deb(&Pkg::new(PKG, "1.2")).await;
    let (status, body) = api.post("/fleet/check", json!({})).await;
    assert_eq!(status, 202, "{body}");
    api.rollout_in(body["rollout_id"].as_str().unwrap(), "completed")
        .await;
    let cancelled_id = api
        .start(json!({"canary": [canary.name()], "approve_after": 0}))
        .await;
    api.rollout_in(&cancelled_id, "awaiting_approval").await;
    let (status, body) = api
        .post(&format!("/rollouts/{cancelled_id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 202, "{body:#}");
    let cancelled = api.rollout_in(&cancelled_id, "cancelled").await;
    for host in [second, third] {
        let entry = rollout_entry(&cancelled, host.name());
        assert_eq!(entry["state"], "cancelled", "{cancelled:#}");
        assert_eq!(entry["reason"], "rollout cancelled while awaiting approval");
        assert!(entry["job_id"].is_null(), "{cancelled:#}");
        assert_eq!(installed_version(host, PKG).await, "1.1", "{}", host.name());
    }
    assert_eq!(installed_version(canary, PKG).await, "1.2");

    // 5. An approval timeout that runs out cancels it the same way.
    let timed_out_id = api
        .start(json!({"canary": [second.name()], "approve_after": "canary",
                      "approval_timeout": "1s"}))
        .await;
    let timed_out = api.rollout_in(&timed_out_id, "cancelled").await;
    assert_eq!(
        rollout_entry(&timed_out, third.name())["reason"],
        "rollout cancelled: not approved within approval_timeout (1s)",
        "{timed_out:#}"
    );
    assert_eq!(installed_version(second, PKG).await, "1.2");
    assert_eq!(installed_version(third, PKG).await, "1.1");
}
