//! Small HTTP helpers the end-to-end tests share: the typed client of a daemon (`api`), JSON
//! GET/POST against a daemon's base URL, waiting for a job or rollout to finish, and reading a
//! package's installed version out of band. Every request and wait gives up after the suite's
//! `wait::WAIT_DEADLINE`.

use serde_json::Value;

use crate::fleet::Host;
use crate::wait;

/// The typed client (`tendhost-client`) of the daemon at `base_url`, trusting the CA in
/// `TENDHOST_CACERT` when set, with the suite's deadline as its request timeout.
pub fn api(base_url: &str) -> tendhost_client::Client {
    let mut builder =
        tendhost_client::ClientBuilder::new(base_url).request_timeout(wait::WAIT_DEADLINE);
    if let Some(path) = std::env::var_os("TENDHOST_CACERT") {
        let pem = std::fs::read(&path).unwrap_or_else(|err| {
            panic!(
                "TENDHOST_CACERT={}: cannot read: {err}",
                path.to_string_lossy()
            )
        });
        builder = builder.ca_pem(pem);
    }
    builder.build().expect("the test client builds")
}

/// Waits (at most [`wait::WAIT_DEADLINE`]) through the typed client until the job has ended.
pub async fn wait_job_ended(
    api: &tendhost_client::Client,
    job_id: &str,
) -> tendhost_api::jobs::Job {
    use tendhost_api::jobs::JobState;
    wait::until(&format!("job {job_id} ending"), || async {
        let job = api.get_job(job_id).await.map_err(|err| err.to_string())?;
        if matches!(job.summary.state, JobState::Queued | JobState::Running) {
            Err(format!("state {:?}", job.summary.state))
        } else {
            Ok(job)
        }
    })
    .await
}

/// Waits through the typed client until the rollout is no longer running.
pub async fn wait_rollout_ended(
    api: &tendhost_client::Client,
    rollout_id: &str,
) -> tendhost_api::rollouts::Rollout {
    use tendhost_api::rollouts::RolloutState;
    wait::until(&format!("rollout {rollout_id} ending"), || async {
        let rollout = api
            .get_rollout(rollout_id)
            .await
            .map_err(|err| err.to_string())?;
        if rollout.state == RolloutState::Running {
            Err(format!("{:?}", rollout.counts))
        } else {
            Ok(rollout)
        }
    })
    .await
}

/// `GET base_url + path`, as JSON.
pub async fn get_json(base_url: &str, path: &str) -> Value {
    wait::http_client()
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
    let resp = wait::http_client()
        .post(format!("{base_url}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|err| panic!("POST {path}: {err}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Polls `GET /jobs/{id}` (through the typed client) until the job is neither queued nor
/// running (at most [`wait::WAIT_DEADLINE`]); the job as JSON.
pub async fn wait_job(base_url: &str, job_id: &str) -> Value {
    let job = wait_job_ended(&api(base_url), job_id).await;
    serde_json::to_value(job).expect("a job serialises")
}

/// The installed version of a Debian package on `host`, read with `docker exec`.
pub async fn installed_version(host: &Host, package: &str) -> String {
    host.exec_ok(&["dpkg-query", "-W", "-f=${Version}", package])
        .await
}

/// Polls `GET /rollouts/{id}` (through the typed client) until the rollout is no longer
/// running (at most [`wait::WAIT_DEADLINE`]); the rollout as JSON.
pub async fn wait_rollout(base_url: &str, rollout_id: &str) -> Value {
    let rollout = wait_rollout_ended(&api(base_url), rollout_id).await;
    serde_json::to_value(rollout).expect("a rollout serialises")
}
