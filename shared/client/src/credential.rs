//! Credentials from request headers (or gRPC metadata, which are the same HTTP/2 headers),
//! read by the rules of Warden's own gateway (SPEC §3): `Authorization: Bearer …` (scheme
//! case-insensitive), `Authorization: ApiKey …` or `X-API-Key: …`; never the query string;
//! more than one credential is refused, so a request cannot act as two callers.
use axum::http::{HeaderMap, header};
use std::fmt;
use warden_common::{Error, ErrorCode};

/// How a caller proves who it is. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A Warden access token (`typ` `at+jwt`).
    Bearer(String),
    /// A Warden API key (`wdn_…`).
    ApiKey(String),
}

/// Which kind of credential authenticated a caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    Bearer,
    ApiKey,
}

impl Credential {
    pub fn kind(&self) -> CredentialKind {
        match self {
            Credential::Bearer(_) => CredentialKind::Bearer,
            Credential::ApiKey(_) => CredentialKind::ApiKey,
        }
    }

    /// Reads the one credential of a request, `None` when there is none.
    ///
    /// A malformed `Authorization` header is `token_invalid`; two credentials are
    /// `validation_error`.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Credential>, Error> {
        let mut found = Vec::new();
        for value in headers.get_all(header::AUTHORIZATION) {
            let value = value.to_str().map_err(|_| malformed())?;
            let (scheme, rest) = value.trim().split_once(' ').ok_or_else(malformed)?;
            let rest = rest.trim();
            if rest.is_empty() {
                return Err(malformed());
            }
            if scheme.eq_ignore_ascii_case("bearer") {
                found.push(Credential::Bearer(rest.to_owned()));
            } else if scheme.eq_ignore_ascii_case("apikey") {
                found.push(Credential::ApiKey(rest.to_owned()));
            } else {
                return Err(malformed());
            }
        }
        for value in headers.get_all("x-api-key") {
            let value = value.to_str().map_err(|_| malformed())?.trim();
            if value.is_empty() {
                return Err(malformed());
            }
            found.push(Credential::ApiKey(value.to_owned()));
        }
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            _ => Err(Error::validation("send exactly one credential")),
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credential::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
        }
    }
}

fn malformed() -> Error {
    Error::new(ErrorCode::TokenInvalid, "the authorization header is malformed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn reads_each_form_the_gateway_accepts() {
        let cases = [
            (("authorization", "Bearer abc"), Credential::Bearer("abc".into())),
            (("authorization", "bearer  abc "), Credential::Bearer("abc".into())),
            (("authorization", "ApiKey wdn_x"), Credential::ApiKey("wdn_x".into())),
            (("x-api-key", " wdn_y "), Credential::ApiKey("wdn_y".into())),
        ];
        for (pair, expected) in cases {
            assert_eq!(Credential::from_headers(&headers(&[pair])).unwrap(), Some(expected), "{pair:?}");
        }
        assert_eq!(Credential::from_headers(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn refuses_malformed_and_doubled_credentials() {
        for pair in [("authorization", "Bearer"), ("authorization", "Basic dXNlcjpwdw=="), ("x-api-key", " ")] {
            let e = Credential::from_headers(&headers(&[pair])).unwrap_err();
            assert_eq!(e.code, ErrorCode::TokenInvalid, "{pair:?}");
        }
        let two = headers(&[("authorization", "Bearer a"), ("x-api-key", "wdn_b")]);
        assert_eq!(Credential::from_headers(&two).unwrap_err().code, ErrorCode::ValidationError);
    }

    #[test]
    fn debug_hides_the_secret() {
        let shown = format!("{:?}", Credential::ApiKey("wdn_secret".into()));
        assert!(!shown.contains("secret"), "{shown}");
    }
}
