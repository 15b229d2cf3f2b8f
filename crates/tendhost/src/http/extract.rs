//! Request extractors of the REST handlers that answer in the one error shape: `ApiPath` (path
//! parameters; a value that cannot be decoded is a 404), `OptionalJson` (a JSON body that may
//! be left out entirely), and `Query` (the query string, parsed by hand so a repeated `tag`
//! works, unknown parameters are refused and every bad value is a 422 naming the parameter)
//! with `PageRequest`, the `page`/`per_page` pair.
//!
//! Required JSON bodies use `http::error::ApiJson`.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use tendhost_api::Pagination;
use tendhost_api::pagination::{DEFAULT_PER_PAGE, MAX_PER_PAGE};

use crate::http::error::{ApiError, ApiJson};

/// `Path` that rejects with `ApiError`: a path value that does not decode (bad percent
/// encoding, invalid UTF-8) names no resource, so it is a 404.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) if rejection.status().is_client_error() => {
                Err(ApiError::not_found(format!(
                    "no resource at {}: {}",
                    parts.uri.path(),
                    rejection.body_text()
                )))
            }
            Err(rejection) => Err(ApiError::internal(rejection.body_text())),
        }
    }
}

/// A JSON body that may be absent: no body (or only whitespace) gives `None` whatever the
/// content type; anything else must be `application/json` and parse, exactly as with `ApiJson`.
#[derive(Debug, Clone)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|rejection| {
                let code = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    "payload_too_large"
                } else {
                    "unreadable_body"
                };
                ApiError::new(rejection.status(), code, rejection.body_text())
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        let ApiJson(value) =
            ApiJson::<T>::from_request(Request::from_parts(parts, Body::from(bytes)), state)
                .await?;
        Ok(OptionalJson(Some(value)))
    }
}

/// The query string as `(name, value)` pairs, checked against the parameters a route knows.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses `raw` (`a=1&tag=x&tag=y`); a parameter not in `known` is a 422 naming it.
    pub fn parse(raw: Option<&str>, known: &[&str]) -> Result<Query, ApiError> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        if let Some((name, _)) = pairs
            .iter()
            .find(|(name, _)| !known.contains(&name.as_str()))
        {
            return Err(ApiError::invalid_value(
                name,
                format!(
                    "unknown query parameter; this route takes {}",
                    known.join(", ")
                ),
            ));
        }
        Ok(Query { pairs })
    }

    /// The value of a parameter given at most once.
    pub fn single(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self
            .pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::invalid_value(name, "given more than once"));
        }
        Ok(first)
    }

    /// Every value of a repeatable parameter, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A parameter given at most once, parsed with `parse` (which says what is wrong).
    pub fn parsed<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ApiError> {
        self.single(name)?
            .map(|value| parse(value).map_err(|message| ApiError::invalid_value(name, message)))
            .transpose()
    }

    /// `page` (from 1) and `per_page` (1 to 200, default 50).
    pub fn page(&self) -> Result<PageRequest, ApiError> {
        let page = self
            .parsed("page", |value| int_in_range(value, 1, u32::MAX))?
            .unwrap_or(1);
        let per_page = self
            .parsed("per_page", |value| int_in_range(value, 1, MAX_PER_PAGE))?
            .unwrap_or(DEFAULT_PER_PAGE);
        Ok(PageRequest { page, per_page })
    }
}

fn int_in_range(value: &str, min: u32, max: u32) -> Result<u32, String> {
    let out_of_range = || format!("must be an integer from {min} to {max}, not {value:?}");
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(out_of_range());
    }
    value
        .parse::<u32>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(out_of_range)
}

/// Which page of a list to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub per_page: u32,
}

impl PageRequest {
    /// The pagination block for `total_items` matching items.
    pub fn pagination(self, total_items: u64) -> Pagination {
        Pagination::new(self.page, self.per_page, total_items)
    }

    /// The requested page of `items` (already filtered and ordered) and its pagination block.
    pub fn slice<T>(self, items: Vec<T>) -> (Vec<T>, Pagination) {
        let total_items = items.len();
        let per_page = usize::try_from(self.per_page).unwrap_or(usize::MAX);
        let skip = usize::try_from(self.page - 1)
            .unwrap_or(usize::MAX)
            .saturating_mul(per_page);
        let data = items.into_iter().skip(skip).take(per_page).collect();
        let pagination = Pagination::new(
            self.page,
            self.per_page,
            u64::try_from(total_items).unwrap_or(u64::MAX),
        );
        (data, pagination)
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use axum::routing::post;
    use http_body_util::BodyExt;
    use serde::Deserialize;
    use tower::ServiceExt;

    use crate::http::extract::{ApiPath, OptionalJson, PageRequest, Query};

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Options {
        dry_run: bool,
    }

    async fn echo(
        ApiPath(name): ApiPath<String>,
        OptionalJson(options): OptionalJson<Options>,
    ) -> String {
        format!("{name} {:?}", options.map(|o| o.dry_run))
    }

    /// Status and body of `POST /x/{name}` through `echo`.
    async fn post_to(path: &str, content_type: Option<&str>, body: &str) -> (StatusCode, String) {
        let app = Router::new().route("/x/{name}", post(echo));
        let mut request = Request::builder().method("POST").uri(path);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let response = app
            .oneshot(request.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn optional_json_accepts_no_body_whatever_the_content_type() {
        for content_type in [None, Some("application/json"), Some("text/plain")] {
            assert_eq!(
                post_to("/x/a", content_type, "").await,
                (StatusCode::OK, "a None".to_owned())
            );
        }
        assert_eq!(
            post_to("/x/a", Some("application/json"), " \n").await,
            (StatusCode::OK, "a None".to_owned())
        );
        assert_eq!(
            post_to(
                "/x/a",
                Some("application/json; charset=utf-8"),
                "{\"dry_run\": true}"
            )
            .await,
            (StatusCode::OK, "a Some(true)".to_owned())
        );
    }

    #[tokio::test]
    async fn optional_json_with_a_body_follows_the_json_rules() {
        for (content_type, body, status, code) in [
            (
                None,
                "{}",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            (
                Some("text/plain"),
                "{\"dry_run\": true}",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            (
                Some("application/json"),
                "{",
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
            (
                Some("application/json"),
                "{\"dry_run\": 1}",
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_value",
            ),
            (
                Some("application/json"),
                "{\"dry_run\": true, \"x\": 1}",
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_value",
            ),
        ] {
            let (got, answer) = post_to("/x/a", content_type, body).await;
            assert_eq!(got, status, "{body}: {answer}");
            let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
            assert_eq!(answer["error"]["code"], code, "{body}");
        }
    }

    #[tokio::test]
    async fn undecodable_path_values_are_404_in_the_error_shape() {
        let (status, answer) = post_to("/x/%FF", None, "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["error"]["code"], "not_found");
        assert_eq!(post_to("/x/a%20b", None, "").await.1, "a b None");
    }

    const KNOWN: &[&str] = &["page", "per_page", "tag", "state"];

    fn field(err: &crate::http::error::ApiError) -> String {
        err.details.as_ref().unwrap()["field"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn repeated_tags_and_decoding() {
        let query = Query::parse(Some("tag=web&tag=prod%20eu&state=idle"), KNOWN).unwrap();
        assert_eq!(query.all("tag"), ["web", "prod eu"]);
        assert_eq!(query.single("state").unwrap(), Some("idle"));
        assert_eq!(query.single("page").unwrap(), None);
        assert!(Query::parse(None, KNOWN).unwrap().all("tag").is_empty());
    }

    #[test]
    fn unknown_and_repeated_single_parameters_are_422() {
        let err = Query::parse(Some("tags=web"), KNOWN).unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(field(&err), "tags");
        let err = Query::parse(Some("state=idle&state=failed"), KNOWN)
            .unwrap()
            .single("state")
            .unwrap_err();
        assert_eq!(field(&err), "state");
    }

    #[test]
    fn page_defaults_and_limits() {
        let page = Query::parse(None, KNOWN).unwrap().page().unwrap();
        assert_eq!(
            page,
            PageRequest {
                page: 1,
                per_page: 50
            }
        );
        let page = Query::parse(Some("page=3&per_page=200"), KNOWN)
            .unwrap()
            .page()
            .unwrap();
        assert_eq!(
            page,
            PageRequest {
                page: 3,
                per_page: 200
            }
        );
        for (raw, name) in [
            ("page=0", "page"),
            ("page=-1", "page"),
            ("page=abc", "page"),
            ("page=", "page"),
            ("page=%2B1", "page"),
            ("page=99999999999", "page"),
            ("per_page=0", "per_page"),
            ("per_page=201", "per_page"),
            ("per_page=1.5", "per_page"),
        ] {
            let err = Query::parse(Some(raw), KNOWN).unwrap().page().unwrap_err();
            assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY, "{raw}");
            assert_eq!(field(&err), name, "{raw}");
        }
    }

    #[test]
    fn slicing_pages() {
        let items: Vec<u32> = (1..=7).collect();
        let (data, pagination) = PageRequest {
            page: 2,
            per_page: 3,
        }
        .slice(items.clone());
        assert_eq!(data, [4, 5, 6]);
        assert_eq!((pagination.total_items, pagination.total_pages), (7, 3));
        let (data, _) = PageRequest {
            page: 3,
            per_page: 3,
        }
        .slice(items.clone());
        assert_eq!(data, [7]);
        let (data, pagination) = PageRequest {
            page: u32::MAX,
            per_page: 200,
        }
        .slice(items);
        assert!(data.is_empty());
        assert_eq!(pagination.page, u32::MAX);
        let (data, pagination) = PageRequest {
            page: 1,
            per_page: 50,
        }
        .slice(Vec::<u32>::new());
        assert!(data.is_empty());
        assert_eq!(pagination.total_pages, 0);
    }
}
