//! One `Client` method per operation of the daemon's OpenAPI document, named after its
//! `operationId`, over the `tendhost-api` wire types; `OPERATIONS` lists them (the contract
//! test in `tests/it/client_contract.rs` walks the daemon's own `/openapi.json` against it and
//! calls each through the client). Lists have an `all_*` form that reads every page.
//! The event stream (`events`) is in `stream.rs`.

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tendhost_api::Health;
use tendhost_api::auth::{AuditList, AuditListQuery, WsTicket};
use tendhost_api::groups::{Group, GroupList, TagList};
use tendhost_api::hosts::{
    HostDetail, HostInventory, HostList, HostListQuery, HostSummary, JobAccepted, NewHost,
    RebootRequest,
};
use tendhost_api::jobs::{Job, JobList, JobListQuery, JobSummary};
use tendhost_api::notifications::{NotificationDelivery, NotificationList};
use tendhost_api::pagination::{MAX_PER_PAGE, Pagination};
use tendhost_api::rollouts::{
    FleetCheckRequest, Rollout, RolloutAccepted, RolloutList, RolloutListQuery, RolloutSummary,
};
use tendhost_api::schedules::{Schedule, ScheduleList, ScheduleRunAccepted};
use tendhost_api::session::{SessionInfo, SessionRequest};
use tendhost_api::summary::FleetSummary;
use tendhost_api::tls::TlsStatus;

use crate::{Client, Error, json, query_pairs, segment};

/// An operation of the API as the client calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// The OpenAPI `operationId`.
    pub id: &'static str,
    /// Upper case.
    pub method: &'static str,
    /// As in the OpenAPI document (`/hosts/{name}`).
    pub path: &'static str,
}

const fn op(id: &'static str, method: &'static str, path: &'static str) -> Operation {
    Operation { id, method, path }
}

/// Every operation the client has a method for (the method has the same name).
pub const OPERATIONS: &[Operation] = &[
    op("health", "GET", "/health"),
    op("metrics", "GET", "/metrics"),
    op("events", "GET", "/ws/events"),
    op("ws_ticket", "POST", "/ws/ticket"),
    op("list_audit", "GET", "/audit"),
    op("list_hosts", "GET", "/hosts"),
    op("create_host", "POST", "/hosts"),
    op("get_host", "GET", "/hosts/{name}"),
    op("delete_host", "DELETE", "/hosts/{name}"),
    op("get_host_inventory", "GET", "/hosts/{name}/inventory"),
    op("check_host", "POST", "/hosts/{name}/check"),
    op("update_host", "POST", "/hosts/{name}/update"),
    op("reboot_host", "POST", "/hosts/{name}/reboot"),
    op("retry_host", "POST", "/hosts/{name}/retry"),
    op("acknowledge_host", "POST", "/hosts/{name}/acknowledge"),
    op("list_jobs", "GET", "/jobs"),
    op("get_job", "GET", "/jobs/{id}"),
    op("check_fleet", "POST", "/fleet/check"),
    op("update_fleet", "POST", "/fleet/update"),
    op("list_rollouts", "GET", "/rollouts"),
    op("get_rollout", "GET", "/rollouts/{id}"),
    op("cancel_rollout", "POST", "/rollouts/{id}/cancel"),
    op("resume_rollout", "POST", "/rollouts/{id}/resume"),
    op("approve_rollout", "POST", "/rollouts/{id}/approve"),
    op("list_groups", "GET", "/groups"),
    op("get_group", "GET", "/groups/{name}"),
    op("list_tags", "GET", "/tags"),
    op("get_tls", "GET", "/tls"),
    op("renew_tls", "POST", "/tls/renew"),
    op("fleet_summary", "GET", "/fleet/summary"),
    op("list_schedules", "GET", "/schedules"),
    op("get_schedule", "GET", "/schedules/{name}"),
    op("run_schedule", "POST", "/schedules/{name}/run"),
    op("pause_schedule", "POST", "/schedules/{name}/pause"),
    op("resume_schedule", "POST", "/schedules/{name}/resume"),
    op("list_notifications", "GET", "/notifications"),
    op("test_notification", "POST", "/notifications/{name}/test"),
    op("create_session", "POST", "/session"),
    op("get_session", "GET", "/session"),
    op("delete_session", "DELETE", "/session"),
];

/// A page of a list: its items and where it sits.
trait Paged {
    type Item;
    fn into_parts(self) -> (Vec<Self::Item>, Pagination);
}

macro_rules! paged {
    ($list:ty, $item:ty) => {
        impl Paged for $list {
            type Item = $item;
            fn into_parts(self) -> (Vec<$item>, Pagination) {
                (self.data, self.pagination)
            }
        }
    };
}

paged!(HostList, HostSummary);
paged!(JobList, JobSummary);
paged!(RolloutList, RolloutSummary);

impl Client {
    /// `GET /health`.
    pub async fn health(&self) -> Result<Health, Error> {
        self.call(Method::GET, "/health", &[], None).await
    }

    /// `GET /openapi.json`: the daemon's OpenAPI document.
    pub async fn openapi(&self) -> Result<serde_json::Value, Error> {
        self.call(Method::GET, "/openapi.json", &[], None).await
    }

    /// `GET /metrics`: the Prometheus text exposition.
    pub async fn metrics(&self) -> Result<String, Error> {
        self.call_text("/metrics").await
    }

    /// `POST /ws/ticket`.
    pub async fn ws_ticket(&self) -> Result<WsTicket, Error> {
        self.call(Method::POST, "/ws/ticket", &[], None).await
    }

    /// `GET /audit`: one page.
    pub async fn list_audit(&self, query: &AuditListQuery) -> Result<AuditList, Error> {
        self.call(Method::GET, "/audit", &query_pairs(query), None)
            .await
    }

    /// `GET /hosts`: one page.
    pub async fn list_hosts(&self, query: &HostListQuery) -> Result<HostList, Error> {
        self.call(Method::GET, "/hosts", &query_pairs(query), None)
            .await
    }

    /// `GET /hosts`, every page (`page` and `per_page` of `query` are ignored).
    pub async fn all_hosts(&self, query: &HostListQuery) -> Result<Vec<HostSummary>, Error> {
        self.all_pages::<HostList, _>("/hosts", query).await
    }

    /// `POST /hosts`.
    pub async fn create_host(&self, host: &NewHost) -> Result<HostDetail, Error> {
        self.call(Method::POST, "/hosts", &[], Some(json(host)?))
            .await
    }

    /// `GET /hosts/{name}`.
    pub async fn get_host(&self, name: &str) -> Result<HostDetail, Error> {
        self.call(Method::GET, &host_path(name, ""), &[], None)
            .await
    }

    /// `DELETE /hosts/{name}`.
    pub async fn delete_host(&self, name: &str) -> Result<(), Error> {
        self.call_empty(Method::DELETE, &host_path(name, "")).await
    }

    /// `GET /hosts/{name}/inventory`.
    pub async fn get_host_inventory(&self, name: &str) -> Result<HostInventory, Error> {
        self.call(Method::GET, &host_path(name, "/inventory"), &[], None)
            .await
    }

    /// `POST /hosts/{name}/check`.
    pub async fn check_host(&self, name: &str) -> Result<JobAccepted, Error> {
        self.call(Method::POST, &host_path(name, "/check"), &[], None)
            .await
    }

    /// `POST /hosts/{name}/update` with `body`: an `UpdateRequest`, or a value carrying fields
    /// a newer daemon knows (the daemon refuses unknown fields with 422 naming them).
    pub async fn update_host<B: Serialize + Sync>(
        &self,
        name: &str,
        body: &B,
    ) -> Result<JobAccepted, Error> {
        self.call(
            Method::POST,
            &host_path(name, "/update"),
            &[],
            Some(json(body)?),
        )
        .await
    }

    /// `POST /hosts/{name}/reboot`.
    pub async fn reboot_host(
        &self,
        name: &str,
        body: &RebootRequest,
    ) -> Result<JobAccepted, Error> {
        self.call(
            Method::POST,
            &host_path(name, "/reboot"),
            &[],
            Some(json(body)?),
        )
        .await
    }

    /// `POST /hosts/{name}/retry`.
    pub async fn retry_host(&self, name: &str) -> Result<JobAccepted, Error> {
        self.call(Method::POST, &host_path(name, "/retry"), &[], None)
            .await
    }

    /// `POST /hosts/{name}/acknowledge`.
    pub async fn acknowledge_host(&self, name: &str) -> Result<HostDetail, Error> {
        self.call(Method::POST, &host_path(name, "/acknowledge"), &[], None)
            .await
    }

    /// `GET /jobs`: one page.
    pub async fn list_jobs(&self, query: &JobListQuery) -> Result<JobList, Error> {
        self.call(Method::GET, "/jobs", &query_pairs(query), None)
            .await
    }

    /// `GET /jobs`, every page.
    pub async fn all_jobs(&self, query: &JobListQuery) -> Result<Vec<JobSummary>, Error> {
        self.all_pages::<JobList, _>("/jobs", query).await
    }

    /// `GET /jobs/{id}`.
    pub async fn get_job(&self, id: &str) -> Result<Job, Error> {
        self.call(Method::GET, &format!("/jobs/{}", segment(id)), &[], None)
            .await
    }

    /// `POST /fleet/check`.
    pub async fn check_fleet(&self, body: &FleetCheckRequest) -> Result<RolloutAccepted, Error> {
        self.call(Method::POST, "/fleet/check", &[], Some(json(body)?))
            .await
    }

    /// `POST /fleet/update` with `body`: a `FleetUpdateRequest`, or a value carrying fields a
    /// newer daemon knows.
    pub async fn update_fleet<B: Serialize + Sync>(
        &self,
        body: &B,
    ) -> Result<RolloutAccepted, Error> {
        self.call(Method::POST, "/fleet/update", &[], Some(json(body)?))
            .await
    }

    /// `GET /rollouts`: one page.
    pub async fn list_rollouts(&self, query: &RolloutListQuery) -> Result<RolloutList, Error> {
        self.call(Method::GET, "/rollouts", &query_pairs(query), None)
            .await
    }

    /// `GET /rollouts`, every page.
    pub async fn all_rollouts(
        &self,
        query: &RolloutListQuery,
    ) -> Result<Vec<RolloutSummary>, Error> {
        self.all_pages::<RolloutList, _>("/rollouts", query).await
    }

    /// `GET /rollouts/{id}`.
    pub async fn get_rollout(&self, id: &str) -> Result<Rollout, Error> {
        self.call(Method::GET, &rollout_path(id, ""), &[], None)
            .await
    }

    /// `POST /rollouts/{id}/cancel`.
    pub async fn cancel_rollout(&self, id: &str) -> Result<Rollout, Error> {
        self.call(Method::POST, &rollout_path(id, "/cancel"), &[], None)
            .await
    }

    /// `POST /rollouts/{id}/resume`.
    pub async fn resume_rollout(&self, id: &str) -> Result<Rollout, Error> {
        self.call(Method::POST, &rollout_path(id, "/resume"), &[], None)
            .await
    }

    /// `POST /rollouts/{id}/approve`: lets a rollout waiting at its approval gate go on (a
    /// daemon without gates answers 404).
    pub async fn approve_rollout(&self, id: &str) -> Result<Rollout, Error> {
        self.call(Method::POST, &rollout_path(id, "/approve"), &[], None)
            .await
    }

    /// `GET /groups`.
    pub async fn list_groups(&self) -> Result<GroupList, Error> {
        self.call(Method::GET, "/groups", &[], None).await
    }

    /// `GET /groups/{name}`.
    pub async fn get_group(&self, name: &str) -> Result<Group, Error> {
        self.call(
            Method::GET,
            &format!("/groups/{}", segment(name)),
            &[],
            None,
        )
        .await
    }

    /// `GET /tags`.
    pub async fn list_tags(&self) -> Result<TagList, Error> {
        self.call(Method::GET, "/tags", &[], None).await
    }

    /// `GET /tls`.
    pub async fn get_tls(&self) -> Result<TlsStatus, Error> {
        self.call(Method::GET, "/tls", &[], None).await
    }

    /// `POST /tls/renew`.
    pub async fn renew_tls(&self) -> Result<TlsStatus, Error> {
        self.call(Method::POST, "/tls/renew", &[], None).await
    }

    /// `GET /fleet/summary`: the fleet's counts at a glance.
    pub async fn fleet_summary(&self) -> Result<FleetSummary, Error> {
        self.call(Method::GET, "/fleet/summary", &[], None).await
    }

    /// `GET /schedules`.
    pub async fn list_schedules(&self) -> Result<ScheduleList, Error> {
        self.call(Method::GET, "/schedules", &[], None).await
    }

    /// `GET /schedules/{name}`.
    pub async fn get_schedule(&self, name: &str) -> Result<Schedule, Error> {
        self.call(Method::GET, &schedule_path(name, ""), &[], None)
            .await
    }

    /// `POST /schedules/{name}/run`: starts a run at once.
    pub async fn run_schedule(&self, name: &str) -> Result<ScheduleRunAccepted, Error> {
        self.call(Method::POST, &schedule_path(name, "/run"), &[], None)
            .await
    }

    /// `POST /schedules/{name}/pause`.
    pub async fn pause_schedule(&self, name: &str) -> Result<Schedule, Error> {
        self.call(Method::POST, &schedule_path(name, "/pause"), &[], None)
            .await
    }

    /// `POST /schedules/{name}/resume`.
    pub async fn resume_schedule(&self, name: &str) -> Result<Schedule, Error> {
        self.call(Method::POST, &schedule_path(name, "/resume"), &[], None)
            .await
    }

    /// `GET /notifications`: the newest deliveries (`limit` 1 to 500, the daemon's default
    /// without).
    pub async fn list_notifications(&self, limit: Option<u32>) -> Result<NotificationList, Error> {
        let query: Vec<(String, String)> = limit
            .map(|limit| ("limit".to_owned(), limit.to_string()))
            .into_iter()
            .collect();
        self.call(Method::GET, "/notifications", &query, None).await
    }

    /// `POST /notifications/{name}/test`: sends a test message, answers its delivery.
    pub async fn test_notification(&self, name: &str) -> Result<NotificationDelivery, Error> {
        let path = format!("/notifications/{}/test", segment(name));
        self.call(Method::POST, &path, &[], None).await
    }

    /// `POST /session`: logs in with a token (the answer's `Set-Cookie` is the dashboard's;
    /// this client keeps sending its bearer).
    pub async fn create_session(&self, body: &SessionRequest) -> Result<SessionInfo, Error> {
        self.call(Method::POST, "/session", &[], Some(json(body)?))
            .await
    }

    /// `GET /session`: who the caller is.
    pub async fn get_session(&self) -> Result<SessionInfo, Error> {
        self.call(Method::GET, "/session", &[], None).await
    }

    /// `DELETE /session`.
    pub async fn delete_session(&self) -> Result<(), Error> {
        self.call_empty(Method::DELETE, "/session").await
    }

    /// Every item of a paginated list, `MAX_PER_PAGE` at a time, until the last page.
    async fn all_pages<L, Q>(&self, path: &str, query: &Q) -> Result<Vec<L::Item>, Error>
    where
        L: Paged + DeserializeOwned,
        Q: Serialize,
    {
        let mut base = query_pairs(query);
        base.retain(|(key, _)| key != "page" && key != "per_page");
        let mut items = Vec::new();
        let mut page = 1_u64;
        loop {
            let mut pairs = base.clone();
            pairs.push(("page".to_owned(), page.to_string()));
            pairs.push(("per_page".to_owned(), MAX_PER_PAGE.to_string()));
            let list: L = self.call(Method::GET, path, &pairs, None).await?;
            let (data, pagination) = list.into_parts();
            let n_items = data.len();
            items.extend(data);
            if page >= pagination.total_pages || n_items == 0 {
                return Ok(items);
            }
            page += 1;
        }
    }
}

fn host_path(name: &str, rest: &str) -> String {
    format!("/hosts/{}{rest}", segment(name))
}

fn rollout_path(id: &str, rest: &str) -> String {
    format!("/rollouts/{}{rest}", segment(id))
}

fn schedule_path(name: &str, rest: &str) -> String {
    format!("/schedules/{}{rest}", segment(name))
}
