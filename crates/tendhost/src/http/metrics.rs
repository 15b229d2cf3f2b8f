//! `GET /metrics`: the Prometheus exposition (`tendhost-metrics`), OpenMetrics text when the
//! client asks for it (Prometheus does), the classic `text/plain` format otherwise. It needs
//! a `read` token like every GET.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use crate::http::AppState;
use crate::http::error::ApiError;

/// The fleet's metrics for Prometheus.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "monitoring",
    summary = "Prometheus metrics",
    description = "The Prometheus text exposition: per-host pending and security updates, reboot need, state and last check; job and rollout counters; WebSocket clients; build info. Host names are labels, job ids never are. Answers `application/openmetrics-text` when the Accept header asks for it (Prometheus does), `text/plain; version=0.0.4` otherwise. Metric names and alert rules: docs/monitoring.md.",
    responses(
        (status = 200, description = "The exposition", body = String, content_type = "text/plain"),
        (status = 503, description = "The daemon is shutting down", body = tendhost_api::ErrorResponse),
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(tls) = state.tls() {
        let not_after = tls.status().cert.not_after;
        let secs = not_after
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
            });
        state.metrics().set_certificate_not_after(secs);
    }
    let openmetrics = state.metrics().scrape(state.fleet()).await?;
    let wants_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("application/openmetrics-text"));
    if wants_openmetrics {
        Ok((
            [(header::CONTENT_TYPE, tendhost_metrics::OPENMETRICS)],
            openmetrics,
        )
            .into_response())
    } else {
        Ok((
            [(header::CONTENT_TYPE, tendhost_metrics::PROMETHEUS_TEXT)],
            tendhost_metrics::to_prometheus_text(&openmetrics),
        )
            .into_response())
    }
}

#[cfg(test)]
mod tests {
    /// The document names `/metrics` as a `text/plain` answer that takes a token.
    #[test]
    fn openapi_documents_metrics_as_text_behind_a_token() {
        let doc = serde_json::to_value(crate::http::openapi()).unwrap();
        let get = &doc["paths"]["/metrics"]["get"];
        assert!(
            get["responses"]["200"]["content"]["text/plain"].is_object(),
            "{get:#}"
        );
        assert_eq!(
            get["security"],
            serde_json::json!([{"bearer": []}]),
            "{get:#}"
        );
    }
}
