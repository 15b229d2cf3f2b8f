//! The HTTP layer: the axum router, its shared state, and the OpenAPI document generated from
//! the handlers (utoipa). Handlers live one module per resource; wire types come from
//! `tendhost-api`; errors leave through `http::error::ApiError`.

pub mod auth;
pub mod docs;
pub mod error;
pub mod events_map;
pub mod extract;
pub mod fleet;
pub mod groups;
pub mod guard;
pub mod hosts;
pub mod jobs;
pub mod mapping;
pub mod metrics;
pub mod new_host;
pub mod notifications;
pub mod redirect;
pub mod rollouts;
pub mod schedules;
pub mod selection;
pub mod session;
pub mod summary;
pub mod system;
pub mod tags;
pub mod tls;
pub mod ws;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use tendhost_core::Fleet;
use tokio::sync::watch;

use crate::config::{ApiHostsConfig, Config, HostDefaults};
use crate::http::error::{ApiError, method_not_allowed, not_found_route};
use crate::persist::Records;

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    fleet: Fleet,
    defaults: HostDefaults,
    /// `[daemon.api_hosts]`: whether and where `POST /hosts` may register hosts.
    api_hosts: ApiHostsConfig,
    /// Flips to `true` when the daemon starts shutting down (WebSockets close on it).
    shutdown: watch::Receiver<bool>,
    /// WebSocket keepalive.
    ws: ws::WsSettings,
    /// Durable state (jobs of earlier runs, runtime hosts, the event log).
    records: Option<Records>,
    /// Tokens, roles, the limiter, tickets and the audit trail.
    access: Arc<auth::AccessControl>,
    /// Host, Origin and CSRF rules (`http::guard`).
    guard: guard::Guard,
    /// The certificate service when TLS is on.
    tls: Option<tendhost_tls::Tls>,
    /// The Prometheus registry (`GET /metrics`, WebSocket clients).
    metrics: Arc<tendhost_metrics::Metrics>,
    /// `[[schedule]]` and their runner (`/schedules`).
    schedules: Option<tendhost_core::schedule::Schedules>,
    /// The notifiers (`/notifications`), when `[[notify]]` names any; a config reload swaps
    /// in a new service.
    notify: NotifySlot,
}

/// Where the notification service in force lives: read per request, replaced by a reload.
pub type NotifySlot = Arc<std::sync::RwLock<Option<Arc<tendhost_notify::Service>>>>;

impl AppState {
    pub fn new(
        config: &Config,
        fleet: Fleet,
        shutdown: watch::Receiver<bool>,
        records: Option<Records>,
        access: Arc<auth::AccessControl>,
        metrics: Arc<tendhost_metrics::Metrics>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                records,
                access,
                metrics,
                guard: guard::Guard::new(
                    config.daemon.bind,
                    &own_names(config),
                    &config.daemon.cors_origins,
                ),
                fleet,
                defaults: config.defaults.clone(),
                api_hosts: config.daemon.api_hosts.clone(),
                shutdown,
                ws: ws::WsSettings {
                    ping_interval: config.daemon.ws_ping_interval,
                    clients: Arc::new(tokio::sync::Semaphore::new(
                        config.daemon.limits.max_ws_clients,
                    )),
                },
                tls: None,
                schedules: None,
                notify: NotifySlot::default(),
            }),
        }
    }

    /// The same state with the schedules.
    #[must_use]
    pub fn with_schedules(self, schedules: tendhost_core::schedule::Schedules) -> Self {
        let Ok(mut inner) = Arc::try_unwrap(self.inner) else {
            panic!("with_schedules is called before the state is shared");
        };
        inner.schedules = Some(schedules);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The same state with the notification service's slot.
    #[must_use]
    pub fn with_notify(self, notify: NotifySlot) -> Self {
        let Ok(mut inner) = Arc::try_unwrap(self.inner) else {
            panic!("with_notify is called before the state is shared");
        };
        inner.notify = notify;
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The schedules, when the daemon runs them.
    pub fn schedules(&self) -> Option<&tendhost_core::schedule::Schedules> {
        self.inner.schedules.as_ref()
    }

    /// The notification service in force, when notifiers are configured.
    pub fn notify(&self) -> Option<Arc<tendhost_notify::Service>> {
        self.inner
            .notify
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The same state with the certificate service (TLS on).
    #[must_use]
    pub fn with_tls(self, tls: tendhost_tls::Tls) -> Self {
        let Ok(mut inner) = Arc::try_unwrap(self.inner) else {
            panic!("with_tls is called before the state is shared");
        };
        inner.tls = Some(tls);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The certificate service, when TLS is on.
    pub fn tls(&self) -> Option<&tendhost_tls::Tls> {
        self.inner.tls.as_ref()
    }

    pub fn fleet(&self) -> &Fleet {
        &self.inner.fleet
    }

    /// The state database, when the daemon has one.
    pub fn records(&self) -> Option<&Records> {
        self.inner.records.as_ref()
    }

    /// `[defaults]`, applied to hosts registered through the API.
    pub fn defaults(&self) -> &HostDefaults {
        &self.inner.defaults
    }

    /// `[daemon.api_hosts]`.
    pub fn api_hosts(&self) -> &ApiHostsConfig {
        &self.inner.api_hosts
    }

    /// A receiver that turns `true` when shutdown starts.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.clone()
    }

    /// Host, Origin and CSRF rules.
    pub fn guard(&self) -> &guard::Guard {
        &self.inner.guard
    }

    /// Access control (`http::auth`).
    pub fn access(&self) -> &auth::AccessControl {
        &self.inner.access
    }

    /// The Prometheus registry.
    pub fn metrics(&self) -> &tendhost_metrics::Metrics {
        &self.inner.metrics
    }

    /// Settings of the WebSocket sessions (`GET /ws/events`).
    pub fn ws(&self) -> &ws::WsSettings {
        &self.inner.ws
    }
}

/// `public_names` and, in `self-signed` and `acme` mode, the names the certificate is issued
/// for: a client that verifies the certificate by a name reaches the daemon by it.
fn own_names(config: &Config) -> Vec<String> {
    let mut names = config.daemon.public_names.clone();
    match &config.daemon.tls.mode {
        Some(tendhost_tls::Mode::SelfSigned(settings)) => {
            names.extend(settings.names.iter().map(|name| match name {
                tendhost_tls::San::Ip(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
                other => other.to_string(),
            }));
        }
        Some(tendhost_tls::Mode::Acme(settings)) => names.extend(settings.domains.clone()),
        _ => {}
    }
    names
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tendhost",
        description = "Keeps a fleet of Linux hosts up to date: hosts, jobs, rolling fleet updates and a live event stream."
    ),
    tags(
        (name = "system", description = "Daemon health and documentation"),
        (name = "hosts", description = "Managed hosts: list, register, inspect, and check, update, reboot, retry or acknowledge one host"),
        (name = "jobs", description = "Checks, updates and reboots of single hosts, with their outcome and log"),
        (name = "fleet", description = "Fleet-wide checks and rolling updates"),
        (name = "rollouts", description = "Progress and cancellation of fleet operations"),
        (name = "schedules", description = "Schedules from the config: when they run next, run one now, pause and resume"),
        (name = "groups", description = "Groups and tags of hosts"),
        (name = "access", description = "WebSocket tickets and dashboard sessions for browsers, and the audit trail of changes and refusals"),
        (name = "tls", description = "The TLS certificate the daemon serves: status, and renewal in self-signed and acme mode"),
        (name = "monitoring", description = "Prometheus metrics of the daemon and its fleet"),
        (name = "notifications", description = "Deliveries to the webhook, ntfy and email notifiers, and test messages")
    ),
    components(schemas(tendhost_api::notifications::NotificationV1))
)]
struct ApiDoc;

/// The OpenAPI document and the routes it describes.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::health))
        .routes(routes!(tls::get))
        .routes(routes!(tls::renew))
        .routes(routes!(metrics::metrics))
        .routes(routes!(notifications::list))
        .routes(routes!(notifications::test))
        .routes(routes!(ws::events))
        .routes(routes!(auth::ws_ticket))
        .routes(routes!(auth::list_audit))
        .routes(routes!(session::create, session::get, session::delete))
        .routes(routes!(summary::get))
        .routes(routes!(hosts::list, hosts::create))
        .routes(routes!(hosts::get, hosts::delete))
        .routes(routes!(hosts::inventory))
        .routes(routes!(hosts::check))
        .routes(routes!(hosts::update))
        .routes(routes!(hosts::reboot))
        .routes(routes!(hosts::retry))
        .routes(routes!(hosts::acknowledge))
        .routes(routes!(jobs::list))
        .routes(routes!(jobs::get))
        .routes(routes!(fleet::check))
        .routes(routes!(fleet::update))
        .routes(routes!(rollouts::list))
        .routes(routes!(rollouts::get))
        .routes(routes!(rollouts::cancel))
        .routes(routes!(rollouts::approve))
        .routes(routes!(rollouts::resume))
        .routes(routes!(schedules::list))
        .routes(routes!(schedules::get))
        .routes(routes!(schedules::run))
        .routes(routes!(schedules::pause))
        .routes(routes!(schedules::resume))
        .routes(routes!(groups::list))
        .routes(routes!(groups::get))
        .routes(routes!(tags::list))
}

/// The OpenAPI document (generated from the handlers).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api_routes().into_openapi();
    auth::document_access(&mut doc);
    doc
}

/// The whole HTTP application; with TLS on, every answer carries HSTS.
pub fn router(state: AppState) -> Router {
    let (api, mut openapi) = api_routes().split_for_parts();
    auth::document_access(&mut openapi);
    let api = api.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::enforce,
    ));
    let openapi_json = openapi_json(&openapi);
    let hsts = state.tls().is_some();
    let router = api
        .merge(docs::router(Arc::new(openapi)))
        .merge(openapi_json)
        .merge(tendhost_ui::router())
        .fallback(not_found_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::check,
        ))
        .with_state(state);
    if hsts {
        router.layer(axum::middleware::map_response(tls::hsts))
    } else {
        router
    }
}

/// `GET /openapi.json`: the document is serialised here, once, and every request gets the
/// same bytes (it does not change while the daemon runs).
fn openapi_json<S: Clone + Send + Sync + 'static>(openapi: &utoipa::openapi::OpenApi) -> Router<S> {
    let body = match openapi.to_json() {
        Ok(json) => Ok(Bytes::from(json)),
        Err(err) => {
            tracing::error!(%err, "the OpenAPI document does not serialize; /openapi.json answers 500");
            Err(format!(
                "the OpenAPI document could not be serialized: {err}"
            ))
        }
    };
    Router::new().route(
        "/openapi.json",
        get(move || {
            let response = match &body {
                Ok(json) => {
                    ([(header::CONTENT_TYPE, "application/json")], json.clone()).into_response()
                }
                Err(message) => ApiError::internal(message.clone()).into_response(),
            };
            std::future::ready(response)
        }),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    /// `/openapi.json` answers the document serialised at router build, the same bytes each time.
    #[tokio::test]
    async fn openapi_json_is_the_document_serialised_once() {
        let openapi = crate::http::openapi();
        let expected = openapi.to_json().unwrap();
        let app = crate::http::openapi_json::<()>(&openapi);
        for _ in 0..2 {
            let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(std::str::from_utf8(&bytes).unwrap(), expected);
        }
    }
}
