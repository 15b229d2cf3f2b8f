//! The typed client (`tendhost-client`) against the daemon's own OpenAPI document: every
//! operation `/openapi.json` lists is called through the client on a daemon managing a fleet
//! host, and must reach its route and decode (a typed answer, or the API's error shape from
//! the route itself). An operation the client has no method for fails the test naming it.

use tendhost_api::auth::AuditListQuery;
use tendhost_api::hosts::{HostListQuery, NewHost, RebootRequest, UpdateRequest};
use tendhost_api::jobs::JobListQuery;
use tendhost_api::rollouts::{FleetCheckRequest, FleetUpdateRequest, RolloutListQuery};
use tendhost_api::session::SessionRequest;
use tendhost_client::{Client, Error, OPERATIONS, StreamOptions};
use tendhost_tests::cli::fleet_config;
use tendhost_tests::daemon::spawn_app;
use tendhost_tests::fleet::Fleet;
use tendhost_tests::http::{api, wait_job_ended, wait_rollout_ended};
use tendhost_tests::wait;

/// The `[[schedule]]` of the test's config (a check of the fleet host, disabled: it runs
/// only when asked).
const SCHEDULE: &str = "contract-check";

/// The `[[notify]]` of the test's config: a webhook to a closed port (its test delivery is
/// recorded as failed).
const NOTIFIER: &str = "contract-hook";

/// The operations of an OpenAPI document: `(operationId, METHOD, path)`.
fn operations(doc: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if let Some(id) = operation["operationId"].as_str() {
                ops.push((id.to_owned(), method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// What calling one operation through the client gave: `Ok` for a typed answer or an error
/// answered by the route itself; `Err` says what went wrong.
type Outcome = Result<(), String>;

/// The route answered: a typed success, or the API's error shape that is not "no such route"
/// / "wrong method" / a body the route could not read.
fn reached<T>(result: Result<T, Error>) -> Outcome {
    match result {
        Ok(_) => Ok(()),
        Err(Error::Api { status, body })
            if !(status == 405
                || status == 422
                || status == 415
                || (status == 404 && body.message.starts_with("no route"))) =>
        {
            Ok(())
        }
        Err(err) => Err(err.to_string()),
    }
}

/// Calls operation `id` through the client; `None` when the client has no method for it.
async fn call(client: &Client, id: &str, host: &str, runtime: &NewHost) -> Option<Outcome> {
    let outcome = match id {
        "health" => reached(client.health().await),
        "metrics" => reached(client.metrics().await),
        "events" => {
            let options = StreamOptions {
                since: Some(0),
                ..StreamOptions::default()
            };
            match client.events(options).await {
                Ok(mut stream) => match wait::within("a replayed event", stream.next()).await {
                    Ok(received) if received.message.is_some() => Ok(()),
                    Ok(received) => Err(format!(
                        "an event this client cannot read: {}",
                        received.text
                    )),
                    Err(err) => Err(err.to_string()),
                },
                Err(err) => Err(err.to_string()),
            }
        }
        "ws_ticket" => reached(client.ws_ticket().await),
        "list_audit" => reached(client.list_audit(&AuditListQuery::default()).await),
        "list_hosts" => reached(client.list_hosts(&HostListQuery::default()).await),
        "create_host" => reached(client.create_host(runtime).await),
        "get_host" => reached(client.get_host(host).await),
        "delete_host" => reached(client.delete_host(&runtime.name).await),
        "get_host_inventory" => reached(client.get_host_inventory(host).await),
        "check_host" => job(client, client.check_host(host).await).await,
        "update_host" => {
            let request = UpdateRequest {
                dry_run: true,
                ..UpdateRequest::default()
            };
            job(client, client.update_host(host, &request).await).await
        }
        "reboot_host" => {
            job(
                client,
                client.reboot_host(host, &RebootRequest::default()).await,
            )
            .await
        }
        "retry_host" => job(client, client.retry_host(host).await).await,
        "acknowledge_host" => reached(client.acknowledge_host(host).await),
        "list_jobs" => reached(client.list_jobs(&JobListQuery::default()).await),
        "get_job" => match client.all_jobs(&JobListQuery::default()).await {
            Ok(jobs) => match jobs.first() {
                Some(first) => reached(client.get_job(&first.id).await),
                None => Err("no job to get".to_owned()),
            },
            Err(err) => Err(err.to_string()),
        },
        "check_fleet" => {
            rollout(
                client,
                client.check_fleet(&FleetCheckRequest::default()).await,
            )
            .await
        }
        "update_fleet" => {
            let request: FleetUpdateRequest =
                serde_json::from_value(serde_json::json!({"dry_run": true})).expect("request");
            rollout(client, client.update_fleet(&request).await).await
        }
        "list_rollouts" => reached(client.list_rollouts(&RolloutListQuery::default()).await),
        "get_rollout" | "cancel_rollout" | "resume_rollout" | "approve_rollout" => {
            match client.all_rollouts(&RolloutListQuery::default()).await {
                Ok(rollouts) => match rollouts.first().map(|first| first.id.clone()) {
                    Some(rollout_id) => match id {
                        "get_rollout" => reached(client.get_rollout(&rollout_id).await),
                        "cancel_rollout" => reached(client.cancel_rollout(&rollout_id).await),
                        "resume_rollout" => reached(client.resume_rollout(&rollout_id).await),
                        _ => reached(client.approve_rollout(&rollout_id).await),
                    },
                    None => Err("no rollout to call it on".to_owned()),
                },
                Err(err) => Err(err.to_string()),
            }
        }
        "list_groups" => reached(client.list_groups().await),
        "get_group" => reached(client.get_group("all").await),
        "list_tags" => reached(client.list_tags().await),
        "get_tls" => reached(client.get_tls().await),
        "renew_tls" => reached(client.renew_tls().await),
        "fleet_summary" => reached(client.fleet_summary().await),
        "list_schedules" => reached(client.list_schedules().await),
        "get_schedule" => reached(client.get_schedule(SCHEDULE).await),
        "run_schedule" => match client.run_schedule(SCHEDULE).await {
            Ok(accepted) => {
                wait_rollout_ended(client, &accepted.rollout_id).await;
                Ok(())
            }
            Err(err) => reached(Err::<(), _>(err)),
        },
        "pause_schedule" => reached(client.pause_schedule(SCHEDULE).await),
        "resume_schedule" => reached(client.resume_schedule(SCHEDULE).await),
        "list_notifications" => reached(client.list_notifications(Some(10)).await),
        "test_notification" => reached(client.test_notification(NOTIFIER).await),
        "create_session" => {
            let request = SessionRequest {
                token: "not-a-token".to_owned(),
            };
            reached(client.create_session(&request).await)
        }
        "get_session" => reached(client.get_session().await),
        "delete_session" => reached(client.delete_session().await),
        _ => return None,
    };
    Some(outcome)
}

/// A job's `202` answer, then its end (so the next operation finds the host free).
async fn job(
    client: &Client,
    accepted: Result<tendhost_api::hosts::JobAccepted, Error>,
) -> Outcome {
    match accepted {
        Ok(accepted) => {
            wait_job_ended(client, &accepted.job_id).await;
            Ok(())
        }
        Err(err) => reached(Err::<(), _>(err)),
    }
}

/// A rollout's `202` answer, then its end.
async fn rollout(
    client: &Client,
    accepted: Result<tendhost_api::rollouts::RolloutAccepted, Error>,
) -> Outcome {
    match accepted {
        Ok(accepted) => {
            wait_rollout_ended(client, &accepted.rollout_id).await;
            Ok(())
        }
        Err(err) => reached(Err::<(), _>(err)),
    }
}

/// Where an operation runs in the walk: registration before the host's jobs, removal last.
fn order(id: &str) -> u8 {
    match id {
        "create_host" => 0,
        "delete_host" => 3,
        id if id.contains("rollout") => 2,
        _ => 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_calls_every_operation_of_the_daemons_openapi_document() {
    let Some(fleet) = Fleet::builder().apt(1).start().await else {
        return;
    };
    let host = &fleet.hosts()[0];
    let config = format!(
        "{}\n[groups]\nall = [\"{}\"]\n\n[daemon.api_hosts]\nallow = [\"{}/32\"]\nknown_hosts = \"accept-new\"\nssh_key = \"{}\"\n\n\
         [[schedule]]\nname = \"{SCHEDULE}\"\nenabled = false\ncron = \"0 3 * * *\"\naction = \"check\"\n\n\
         [[notify]]\nname = \"{NOTIFIER}\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\nsecret = \"contract-secret-0123456789\"\n",
        fleet_config(&fleet, &[host], &["web"]),
        host.name(),
        host.addr(),
        fleet.ssh_key().display()
    );
    let app = spawn_app(&config).await;
    let client = api(&app.base_url);
    let doc = client.openapi().await.expect("GET /openapi.json");
    let mut ops = operations(&doc);
    ops.sort_by_key(|(id, _, _)| order(id));
    let runtime: NewHost = serde_json::from_value(serde_json::json!({
        "name": "contract-runtime", "addr": host.addr().to_string()
    }))
    .expect("new host");

    let mut problems = Vec::new();
    for (id, method, path) in &ops {
        match OPERATIONS.iter().find(|op| op.id == id) {
            None => problems.push(format!(
                "{id} ({method} {path}): tendhost-client has no method for this operation \
                 (add it to crates/tendhost-client/src/routes.rs and OPERATIONS)"
            )),
            Some(op) if op.method != method || op.path != path => problems.push(format!(
                "{id}: the document says {method} {path}, the client calls {} {}",
                op.method, op.path
            )),
            Some(_) => {}
        }
        match call(&client, id, host.name(), &runtime).await {
            None => problems.push(format!(
                "{id} ({method} {path}): the contract test cannot call it through the client \
                 (add it to tests/it/client_contract.rs)"
            )),
            Some(Err(err)) => problems.push(format!("{id} ({method} {path}): {err}")),
            Some(Ok(())) => {}
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} operations failed through the client:\n{}",
        problems.len(),
        ops.len(),
        problems.join("\n")
    );
    assert!(
        ops.len() >= 39,
        "only {} operations in the document",
        ops.len()
    );
}
