//! Request extraction: credentials only from headers (never the query string), and JSON
//! bodies whose every rejection is a problem document, not axum's plain text.
use crate::problem::ApiError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::marker::PhantomData;
use warden_auth::Credential;
use warden_common::secret::Secret;
use warden_common::{Error, ErrorCode};

/// Reads `Authorization: Bearer …` (scheme case-insensitive), `Authorization: ApiKey …`
/// or `X-API-Key: …`. More than one credential is refused, so a request cannot be
/// authenticated as two callers.
pub(crate) fn credential(headers: &HeaderMap) -> Result<Option<Credential>, ApiError> {
    let mut found = Vec::new();
    for value in headers.get_all(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| malformed())?;
        let (scheme, rest) = value.trim().split_once(' ').ok_or_else(malformed)?;
        let rest = rest.trim();
        if rest.is_empty() {
            return Err(malformed());
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            found.push(Credential::AccessToken(Secret::new(rest)));
        } else if scheme.eq_ignore_ascii_case("apikey") {
            found.push(Credential::ApiKey(Secret::new(rest)));
        } else {
            return Err(malformed());
        }
    }
    for value in headers.get_all("x-api-key") {
        let value = value.to_str().map_err(|_| malformed())?.trim();
        if value.is_empty() {
            return Err(malformed());
        }
        found.push(Credential::ApiKey(Secret::new(value)));
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(ApiError::from(Error::validation("send exactly one credential"))),
    }
}

fn malformed() -> ApiError {
    ApiError::from(Error::new(ErrorCode::TokenInvalid, "the authorization header is malformed")).presented()
}

/// `axum::Json` with problem+json rejections: 400 for bad JSON, 413 too large, 415 wrong type.
/// Every request body is a JSON object (the OpenAPI document says so), and anything else is
/// a 400: serde would otherwise fill a struct from an array, field by field in order.
pub(crate) struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<Object<T>>::from_request(req, state).await {
            Ok(axum::Json(Object(value))) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `T`, read only from a JSON object.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OnlyMaps<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for OnlyMaps<T> {
            type Value = T;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer.deserialize_map(OnlyMaps(PhantomData)).map(Object)
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let detail = match &rejection {
        JsonRejection::MissingJsonContentType(_) => "the body must be application/json".to_owned(),
        JsonRejection::JsonDataError(e) => {
            format!("invalid request body: {}", e.body_text().rsplit(": ").next().unwrap_or(""))
        }
        JsonRejection::JsonSyntaxError(_) => "the body is not valid JSON".to_owned(),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => "the body is too large".to_owned(),
        _ => "the body could not be read".to_owned(),
    };
    let status = match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::PAYLOAD_TOO_LARGE => status,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::with_status(Error::validation(detail), status)
}

/// `axum::extract::Path` with a problem+json rejection (e.g. a segment that is not UTF-8).
pub(crate) struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|_| ApiError::from(Error::validation("the path is malformed")))
    }
}

/// `axum::extract::Query` with a problem+json rejection (e.g. a repeated parameter).
pub(crate) struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|_| ApiError::from(Error::validation("the query string is malformed")))
    }
}

/// For optional string fields of request bodies (`#[serde(default, deserialize_with = "…")]`
/// on an `Option<String>`): absent is `None`, but an explicit `null` is refused like any other
/// value that is not a string, as the OpenAPI document (plain `string`) says.
pub(crate) fn string_if_present<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize as _;
    String::deserialize(deserializer).map(Some)
}

/// For integer fields of request bodies (`#[serde(default, deserialize_with = "…")]` on an
/// `Option`): JSON Schema, and so the OpenAPI document, counts `60.0` as the integer 60 where
/// serde refuses it, so a number without a fractional part is accepted as that integer.
pub(crate) fn integer<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::Deserialize as _;
    use serde::de::Error as _;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else { return Ok(None) };
    // Beyond 2^53 a float no longer holds every integer exactly; no field needs that range.
    let whole =
        number.as_i64().or_else(|| number.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= 9.0e15).map(|f| f as i64));
    let value = whole.ok_or_else(|| D::Error::custom(format!("invalid number {number}, expected an integer")))?;
    T::try_from(value).map(Some).map_err(|_| D::Error::custom(format!("{value} is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::response::IntoResponse;

    #[derive(Debug, serde::Deserialize)]
    struct Login {
        username: String,
        password: String,
    }

    async fn read(body: &str) -> Result<Login, ApiError> {
        let request = Request::builder()
            .method("POST")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned()))
            .expect("request");
        Json::<Login>::from_request(request, &()).await.map(|Json(login)| login)
    }

    #[tokio::test]
    async fn only_a_json_object_is_a_body() {
        let login = read(r#"{"username":"ada","password":"secret"}"#).await.expect("an object reads");
        assert_eq!((login.username.as_str(), login.password.as_str()), ("ada", "secret"));
        for body in [r#"["ada","secret"]"#, r#""ada""#, "42", "null"] {
            let refused = read(body).await.expect_err(body);
            assert_eq!(refused.into_response().status(), StatusCode::BAD_REQUEST, "{body}");
        }
        let missing = read(r#"{"username":"ada"}"#).await.expect_err("a missing field");
        assert_eq!(missing.into_response().status(), StatusCode::BAD_REQUEST);
    }
}
