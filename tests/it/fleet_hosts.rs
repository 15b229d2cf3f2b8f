//! Host keys per host on the Docker test fleet: a `strict` config host with a pinned key and
//! an unpinned `strict` one share an address with an `accept-new` host registered through the
//! API, while the host serves a different key (as an impostor at that address would). The
//! key the API host accepts makes neither strict host pass; the pinned one connects again once
//! the real key is back, and the API host then fails naming both fingerprints.
//! The daemon is restarted between phases so every check opens a fresh SSH connection.

use serde_json::{Value, json};
use tendhost_tests::daemon::{TestApp, spawn_app, spawn_app_in};
use tendhost_tests::fleet::{Fleet, Host};
use tendhost_tests::http::{get_json, post_json, wait_job};

/// `ED25519 SHA256:...` of the host's current ed25519 host key, read out of band.
async fn fingerprint(host: &Host) -> String {
    let out = host
        .sh_ok("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub")
        .await;
    // "256 SHA256:abc root@x (ED25519)"
    let sha = out
        .split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_owned();
    format!("ED25519 {sha}")
}

/// Checks `name`; returns the finished job and the host's view.
async fn check(app: &TestApp, name: &str) -> (Value, Value) {
    let (status, body) = post_json(&app.base_url, &format!("/hosts/{name}/check"), json!({})).await;
    assert_eq!(status, 202, "{body}");
    let job = wait_job(&app.base_url, body["job_id"].as_str().unwrap()).await;
    let host = get_json(&app.base_url, &format!("/hosts/{name}")).await;
    (job, host)
}

fn last_error(host: &Value) -> String {
    host["last_error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn fleet_pinned_strict_host_is_unaffected_by_an_accept_new_api_host_at_its_address() {
    let Some(fleet) = Fleet::builder().apt(1).start().await else {
        return;
    };
    let host = &fleet.hosts()[0];
    let real = fingerprint(host).await;
    let pin = real.split_whitespace().nth(1).unwrap().to_owned();
    let key = fleet.ssh_key().display().to_string();
    let config = format!(
        "[daemon]\nlog_level = \"info,tendhost_exec=warn\"\ncheck_on_start = false\n\
         [daemon.api_hosts]\nallow = [\"10.213.0.0/16\"]\nknown_hosts = \"accept-new\"\n\
         ssh_key = \"{key}\"\n\n\
         [defaults]\nuser = \"root\"\nssh_key = \"{key}\"\n\n\
         [[host]]\nname = \"pinned\"\naddr = \"{addr}\"\nhost_key_sha256 = \"{pin}\"\n\
         [host.policy]\nupdates = \"check-only\"\n\n\
         [[host]]\nname = \"unpinned\"\naddr = \"{addr}\"\n\
         [host.policy]\nupdates = \"check-only\"\n",
        addr = host.addr()
    );
    let app = spawn_app(&config).await;
    let (job, view) = check(&app, "pinned").await;
    assert_eq!(job["state"], "succeeded", "{job:#} {view:#}");

    // The address now serves another ed25519 key (the real one kept aside).
    host.sh_ok(
        "mkdir -p /root/real-key && cp /etc/ssh/ssh_host_ed25519_key* /root/real-key/ && \
         rm /etc/ssh/ssh_host_ed25519_key* && \
         ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key",
    )
    .await;
    let other = fingerprint(host).await;
    assert_ne!(real, other);
    let app = spawn_app_in(app.into_dir().await).await;

    // The API host trusts the other key on first use.
    let (status, body) = post_json(
        &app.base_url,
        "/hosts",
        json!({"name": "drifter", "addr": host.addr().to_string(),
               "policy": {"updates": "check-only"}}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (job, view) = check(&app, "drifter").await;
    assert_eq!(job["state"], "succeeded", "{job:#} {view:#}");

    // Neither strict host trusts what drifter accepted.
    let (job, view) = check(&app, "unpinned").await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let error = last_error(&view);
    assert!(
        error.contains("is not known") && error.contains(&other),
        "{view:#}"
    );
    let (job, view) = check(&app, "pinned").await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let error = last_error(&view);
    assert!(error.contains(&pin) && error.contains(&other), "{view:#}");

    // The real key is back: the pinned host connects; drifter sees a changed key, both named.
    host.sh_ok("cp /root/real-key/ssh_host_ed25519_key* /etc/ssh/")
        .await;
    assert_eq!(fingerprint(host).await, real);
    let app = spawn_app_in(app.into_dir().await).await;
    let (job, view) = check(&app, "pinned").await;
    assert_eq!(job["state"], "succeeded", "{job:#} {view:#}");
    let (job, view) = check(&app, "drifter").await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let error = last_error(&view);
    assert!(
        error.contains("CHANGED") && error.contains(&real) && error.contains(&other),
        "{view:#}"
    );
    app.stop().await.unwrap();
}
