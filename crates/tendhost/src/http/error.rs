//! The HTTP error type and the JSON extractor that reports malformed bodies in the same shape.
//!
//! Every 4xx/5xx leaves the daemon as `{"error": {"code", "message", "details"}}`
//! (`tendhost_api::ErrorResponse`), including axum's own rejections (bad JSON, wrong content
//! type), unknown routes and wrong methods.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;
use tendhost_api::{ErrorBody, ErrorResponse};

/// An error answer: status, stable code, message, optional details.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    #[must_use]
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// 422 naming the offending field.
    pub fn invalid_value(field: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
            format!("{field}: {}", message.into()),
        )
        .with_details(json!({ "field": field }))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        let body = ErrorResponse {
            error: ErrorBody {
                code: self.code.to_owned(),
                message: self.message,
                details: self.details,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a request body with `Content-Type: application/json`",
            ),
            JsonRejection::JsonSyntaxError(err) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("request body is not valid JSON: {}", source_message(&err)),
            ),
            JsonRejection::JsonDataError(err) => {
                let mut error = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_value",
                    format!("invalid request body: {}", source_message(&err)),
                );
                if let Some(field) = field_of(&err) {
                    error = error.with_details(json!({ "field": field }));
                }
                error
            }
            JsonRejection::BytesRejection(err) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                format!("cannot read the request body: {err}"),
            ),
            other => ApiError::new(other.status(), "bad_request", other.body_text()),
        }
    }
}

/// The innermost error message (serde's, which names the field and position).
fn source_message(err: &dyn std::error::Error) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// The JSON path of the value a data error is about (`policy.maintenance_window.start`,
/// `filter.hosts[0]`), from the `serde_path_to_error` error axum's `Json` wraps. A missing field
/// is named by serde only in its message (`missing field `x``), so that name is appended to the
/// path of the object it is missing from. A body that is wrong as a whole (`1`, `[]`) has no
/// field.
fn field_of(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let path_error = std::iter::successors(Some(err), |err| err.source())
        .find_map(|err| err.downcast_ref::<serde_path_to_error::Error<serde_json::Error>>())?;
    let path = path_error.path();
    // An empty path displays as ".": the body itself.
    let mut field = if path.iter().next().is_some() {
        path.to_string()
    } else {
        String::new()
    };
    if let Some(missing) = missing_field(&path_error.inner().to_string()) {
        if !field.is_empty() {
            field.push('.');
        }
        field.push_str(missing);
    }
    (!field.is_empty()).then_some(field)
}

/// The name in serde's `missing field `name`` message.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split_once('`').map(|(name, _)| name)
}

/// `Json` that rejects with `ApiError` (same JSON shape as every other error).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(value))
    }
}

/// Fallback for unknown routes.
pub async fn not_found_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {}", uri.path()),
    )
}

/// Fallback for a known route with the wrong method.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use axum::routing::post;
    use http_body_util::BodyExt;
    use serde::Deserialize;
    use tendhost_api::ErrorResponse;
    use tower::ServiceExt;

    use crate::http::error::{ApiJson, method_not_allowed, not_found_route};

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body1 {
        #[allow(dead_code)]
        batch_size: u32,
        #[allow(dead_code)]
        #[serde(default)]
        policy: Option<Policy>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Policy {
        #[allow(dead_code)]
        window: Window,
        #[allow(dead_code)]
        #[serde(default)]
        hosts: Vec<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Window {
        #[allow(dead_code)]
        start: String,
    }

    async fn echo(ApiJson(_): ApiJson<Body1>) -> &'static str {
        "ok"
    }

    fn app() -> Router {
        Router::new()
            .route("/x", post(echo))
            .fallback(not_found_route)
            .method_not_allowed_fallback(method_not_allowed)
    }

    async fn call(
        method: &str,
        uri: &str,
        ctype: Option<&str>,
        body: &str,
    ) -> (StatusCode, ErrorResponse) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(ctype) = ctype {
            req = req.header(header::CONTENT_TYPE, ctype);
        }
        let resp = app()
            .oneshot(req.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let parsed: ErrorResponse = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "not the error shape ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, parsed)
    }

    #[tokio::test]
    async fn malformed_json_is_400() {
        let (status, body) =
            call("POST", "/x", Some("application/json"), "{\"batch_size\": ").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body.error.code, "malformed_json");
    }

    #[tokio::test]
    async fn wrong_content_type_is_415() {
        let (status, body) = call("POST", "/x", Some("text/plain"), "{}").await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(body.error.code, "unsupported_media_type");
        let (status, _) = call("POST", "/x", None, "{}").await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[tokio::test]
    async fn invalid_value_is_422_naming_the_field() {
        let (status, body) = call(
            "POST",
            "/x",
            Some("application/json"),
            "{\"batch_size\": -1}",
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body.error.code, "invalid_value");
        assert!(
            body.error.message.contains("batch_size") || body.error.details.is_some(),
            "{body:?}"
        );
        let (status, body) = call("POST", "/x", Some("application/json"), "{}").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body.error.details.unwrap()["field"], "batch_size");
        let (_, body) = call(
            "POST",
            "/x",
            Some("application/json"),
            "{\"batch_size\": 1, \"bogus\": 2}",
        )
        .await;
        assert_eq!(body.error.details.unwrap()["field"], "bogus");
    }

    /// `details.field` is the JSON path of the value at fault, however deep.
    #[tokio::test]
    async fn nested_errors_name_the_whole_path() {
        for (body, field) in [
            (
                r#"{"batch_size": 1, "policy": {"window": {"start": 1}}}"#,
                "policy.window.start",
            ),
            (
                r#"{"batch_size": 1, "policy": {"window": {}}}"#,
                "policy.window.start",
            ),
            (r#"{"batch_size": 1, "policy": {}}"#, "policy.window"),
            (
                r#"{"batch_size": 1, "policy": {"window": {"start": "a", "end": "b"}}}"#,
                "policy.window.end",
            ),
            (
                r#"{"batch_size": 1, "policy": {"window": {"start": "a"}, "hosts": ["a", 2]}}"#,
                "policy.hosts[1]",
            ),
            (r#"{"batch_size": 1, "policy": 7}"#, "policy"),
        ] {
            let (status, answer) = call("POST", "/x", Some("application/json"), body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(answer.error.code, "invalid_value", "{body}");
            assert_eq!(
                answer.error.details.as_ref().map(|d| d["field"].clone()),
                Some(serde_json::Value::from(field)),
                "{body}: {answer:?}"
            );
        }
    }

    /// A body that is not an object is wrong as a whole: 422 without a field (not "1").
    #[tokio::test]
    async fn a_body_that_is_not_an_object_names_no_field() {
        for body in ["1", "[]", "\"batch_size\"", "null"] {
            let (status, answer) = call("POST", "/x", Some("application/json"), body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(answer.error.code, "invalid_value", "{body}");
            assert_eq!(answer.error.details, None, "{body}: {answer:?}");
            assert!(
                answer
                    .error
                    .message
                    .starts_with("invalid request body: invalid "),
                "{body}: {answer:?}"
            );
        }
    }

    #[tokio::test]
    async fn unknown_route_404_and_wrong_method_405() {
        let (status, body) = call("GET", "/nope", None, "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body.error.code, "not_found");
        let (status, body) = call("GET", "/x", None, "").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body.error.code, "method_not_allowed");
    }
}
