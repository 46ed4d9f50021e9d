//! Request extractors that enforce the API's conventions: bounded JSON bodies whose errors name
//! the bad field, and validated pagination parameters.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Query, Request},
    http::{StatusCode, header, request::Parts},
};
use serde::{Deserialize, de::DeserializeOwned};

use crate::error::ApiError;

/// A JSON body, limited in size by the router's body limit, parsed strictly: malformed JSON,
/// wrong types, missing and unknown fields each give a 400 that names the field.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json")
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::unsupported_media_type());
        }
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map(|l| l.0)
            .unwrap_or(0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large(limit)
            } else {
                ApiError::invalid_body(
                    None,
                    format!("could not read the request body: {rejection}"),
                )
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// The configured body limit, placed in request extensions by the router so extractors can
/// quote it in errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub usize);

/// Parses JSON, reporting the path of the first bad field.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid_body(None, format!("malformed JSON: {inner}"));
        }
        let message = inner.to_string();
        let field = if path == "." || path.is_empty() {
            unknown_or_missing_field(&message)
        } else {
            Some(path)
        };
        ApiError::invalid_body(field, message)
    })?;
    de.end()
        .map_err(|e| ApiError::invalid_body(None, format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// serde reports unknown and missing fields at the parent's path; pull the name out of the
/// message (`unknown field `x`, expected …` / `missing field `x``).
fn unknown_or_missing_field(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

/// Pagination query parameters: `limit` (1–500, default 50) and an opaque `cursor`.
#[derive(Debug, Clone)]
pub struct Pagination {
    /// Page size.
    pub limit: u32,
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// The maximum page size.
pub(crate) const MAX_PAGE: u32 = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPagination {
    limit: Option<String>,
    cursor: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Pagination {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let StrictQuery(raw) =
            StrictQuery::<RawPagination>::from_request_parts(parts, state).await?;
        Pagination::parse(raw.limit, raw.cursor)
    }
}

/// Query parameters into `T` (which should deny unknown fields), refusing with a 400 that names
/// the offending parameter. For lists with filters: put `limit` and `cursor` in `T` and call
/// [`Pagination::parse`].
#[derive(Debug, Clone)]
pub struct StrictQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for StrictQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(value) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                let text = e.body_text();
                let field = unknown_or_missing_field(&text).unwrap_or_else(|| "query".into());
                ApiError::invalid_query(field, text)
            })?;
        Ok(StrictQuery(value))
    }
}

impl Pagination {
    /// Validates raw `limit` and `cursor` parameters.
    pub fn parse(limit: Option<String>, cursor: Option<String>) -> Result<Pagination, ApiError> {
        let limit = match limit {
            None => 50,
            Some(text) => match text.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid_query(
                        "limit",
                        format!("limit must be a whole number from 1 to {MAX_PAGE}, got {text:?}"),
                    ));
                }
            },
        };
        if cursor.as_ref().is_some_and(|c| c.len() > 200) {
            return Err(ApiError::invalid_query("cursor", "cursor is too long"));
        }
        Ok(Pagination { limit, cursor })
    }

    /// As a store page request.
    pub fn to_request(&self) -> garrison_store::PageRequest {
        garrison_store::PageRequest {
            limit: self.limit,
            after: self.cursor.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: u32,
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_json::<Body>(br#"{"name":"a","count":"x"}"#).unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("count"));
        let e = parse_json::<Body>(br#"{"name":"a","count":1,"extra":1}"#).unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("extra"));
        let e = parse_json::<Body>(br#"{"name":"a"}"#).unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("count"));
        let e = parse_json::<Body>(br#"{"name":"a","#).unwrap_err();
        assert_eq!(e.body.field, None);
        assert!(e.body.message.starts_with("malformed JSON"));
        let e = parse_json::<Body>(br#"{"name":"a","count":1} trailing"#).unwrap_err();
        assert!(e.body.message.starts_with("malformed JSON"));
    }
}
