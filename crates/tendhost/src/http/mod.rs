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
pub mod hosts;
pub mod jobs;
pub mod mapping;
pub mod new_host;
pub mod rollouts;
pub mod system;
pub mod tags;
pub mod ws;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use tendhost_core::Fleet;
use tokio::sync::watch;

use crate::config::{Config, HostDefaults};
use crate::http::error::{method_not_allowed, not_found_route};

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    fleet: Fleet,
    defaults: HostDefaults,
    /// Flips to `true` when the daemon starts shutting down (WebSockets close on it).
    shutdown: watch::Receiver<bool>,
    /// WebSocket keepalive.
    ws: ws::WsSettings,
    /// Durable state (jobs of earlier runs, runtime hosts, the event log).
    store: Option<tendhost_store::Store>,
    /// Tokens, roles, the limiter, tickets and the audit trail.
    access: Arc<auth::AccessControl>,
}

impl AppState {
    pub fn new(
        config: &Config,
        fleet: Fleet,
        shutdown: watch::Receiver<bool>,
        store: Option<tendhost_store::Store>,
        access: Arc<auth::AccessControl>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                access,
                fleet,
                defaults: config.defaults.clone(),
                shutdown,
                ws: ws::WsSettings {
                    ping_interval: config.daemon.ws_ping_interval,
                },
            }),
        }
    }

    pub fn fleet(&self) -> &Fleet {
        &self.inner.fleet
    }

    /// The state database, when the daemon has one.
    pub fn store(&self) -> Option<&tendhost_store::Store> {
        self.inner.store.as_ref()
    }

    /// `[defaults]`, applied to hosts registered through the API.
    pub fn defaults(&self) -> &HostDefaults {
        &self.inner.defaults
    }

    /// A receiver that turns `true` when shutdown starts.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.clone()
    }

    /// Access control (`http::auth`).
    pub fn access(&self) -> &auth::AccessControl {
        &self.inner.access
    }

    /// Settings of the WebSocket sessions (`GET /ws/events`).
    pub fn ws(&self) -> &ws::WsSettings {
        &self.inner.ws
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tendhost",
        description = "Keeps a fleet of Linux hosts up to date: hosts, jobs, rolling fleet updates and a live event stream."
    ),
    tags(
        (name = "system", description = "Daemon health, documentation, WebSocket tickets and the audit trail"),
        (name = "hosts", description = "Managed hosts: list, register, inspect, and check, update, reboot, retry or acknowledge one host"),
        (name = "jobs", description = "Checks, updates and reboots of single hosts, with their outcome and log"),
        (name = "fleet", description = "Fleet-wide checks and rolling updates"),
        (name = "rollouts", description = "Progress and cancellation of fleet operations"),
        (name = "groups", description = "Groups and tags of hosts")
    )
)]
struct ApiDoc;

/// The OpenAPI document and the routes it describes.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::health))
        .routes(routes!(ws::events))
        .routes(routes!(auth::ws_ticket))
        .routes(routes!(auth::list_audit))
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
        .routes(routes!(rollouts::resume))
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

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (api, mut openapi) = api_routes().split_for_parts();
    auth::document_access(&mut openapi);
    let openapi = Arc::new(openapi);
    let api = api.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::enforce,
    ));
    let openapi_json = Arc::clone(&openapi);
    api.merge(docs::router(Arc::clone(&openapi)))
        .route(
            "/openapi.json",
            get(move || {
                let doc = Arc::clone(&openapi_json);
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(not_found_route)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}
