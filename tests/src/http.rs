//! Small HTTP helpers the end-to-end tests share: JSON GET/POST against a daemon's base URL,
//! waiting for a job to finish, and reading a package's installed version out of band.

use std::time::Duration;

use serde_json::Value;

use crate::fleet::Host;

/// The HTTP client of the suite and the benches: rustls with ring, trusting the CA in
/// `TENDHOST_CACERT` when it is set (plain HTTP works either way).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(crate::tls::default_client_config())
        .build()
        .expect("build the HTTP client")
}

/// `GET base_url + path`, as JSON.
pub async fn get_json(base_url: &str, path: &str) -> Value {
    client()
        .get(format!("{base_url}{path}"))
        .send()
        .await
        .unwrap_or_else(|err| panic!("GET {path}: {err}"))
        .json()
        .await
        .unwrap_or_else(|err| panic!("GET {path} is not JSON: {err}"))
}

/// `POST base_url + path` with a JSON body; the status and the JSON answer (null if none).
pub async fn post_json(base_url: &str, path: &str, body: Value) -> (u16, Value) {
    let resp = client()
        .post(format!("{base_url}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|err| panic!("POST {path}: {err}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Polls `GET /jobs/{id}` until the job is neither queued nor running (4 minutes at most).
pub async fn wait_job(base_url: &str, job_id: &str) -> Value {
    for _ in 0..2400 {
        let job = get_json(base_url, &format!("/jobs/{job_id}")).await;
        if !matches!(job["state"].as_str(), Some("queued" | "running")) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {job_id} did not finish within 4 minutes");
}

/// The installed version of a Debian package on `host`, read with `docker exec`.
pub async fn installed_version(host: &Host, package: &str) -> String {
    host.exec_ok(&["dpkg-query", "-W", "-f=${Version}", package])
        .await
}

/// Polls `GET /rollouts/{id}` until the rollout is no longer running (4 minutes at most).
pub async fn wait_rollout(base_url: &str, rollout_id: &str) -> Value {
    for _ in 0..1200 {
        let rollout = get_json(base_url, &format!("/rollouts/{rollout_id}")).await;
        if rollout["state"] != "running" {
            return rollout;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("rollout {rollout_id} still running after 4 minutes");
}
