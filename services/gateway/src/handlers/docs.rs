//! The interactive API page at `/api/v1/docs`: a small self-contained HTML page, script and
//! stylesheet (`services/gateway/docs/`, compiled in) that render `/api/v1/openapi.json` and
//! send "try it" requests to this server. Nothing is fetched from elsewhere, so it works
//! offline; the three parts are separate responses so the policy can be `default-src 'self'`.
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};

pub(crate) const PAGE: &str = include_str!("../../docs/index.html");
pub(crate) const SCRIPT: &str = include_str!("../../docs/app.js");
pub(crate) const STYLE: &str = include_str!("../../docs/app.css");

/// Only this origin's script, style and requests; no frames, plugins, base or form targets.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 5] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        // Compiled in: a new binary may change them, so browsers revalidate.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}

pub(crate) async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Access;
    use axum::body::{Body, to_bytes};
    use axum::http::{Method, Request, StatusCode};
    use tower::ServiceExt;

    const ROUTES: [(&str, &str); 3] = [
        ("/api/v1/docs", "text/html; charset=utf-8"),
        ("/api/v1/docs/app.js", "text/javascript; charset=utf-8"),
        ("/api/v1/docs/app.css", "text/css; charset=utf-8"),
    ];

    fn router() -> axum::Router {
        axum::Router::new()
            .route(ROUTES[0].0, axum::routing::get(page))
            .route(ROUTES[1].0, axum::routing::get(script))
            .route(ROUTES[2].0, axum::routing::get(style))
    }

    #[test]
    fn the_routes_are_public_gets_of_the_table() {
        let table = crate::routes::table();
        for (path, _) in ROUTES {
            let route = table.iter().find(|r| r.path == path).unwrap_or_else(|| panic!("{path} is not in the table"));
            assert_eq!(route.method, Method::GET, "{path}");
            assert_eq!(route.access, Access::Public, "{path}");
        }
    }

    #[tokio::test]
    async fn serves_each_part_with_its_type_and_a_strict_policy() {
        for (path, content_type) in ROUTES {
            let response =
                router().oneshot(Request::get(path).body(Body::empty()).expect("request")).await.expect("response");
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers();
            assert_eq!(headers[header::CONTENT_TYPE], content_type, "{path}");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
            let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii");
            assert!(csp.starts_with("default-src 'self';"), "{path}: {csp}");
            assert!(!csp.contains("unsafe-") && !csp.contains('*') && !csp.contains("http"), "{path}: {csp}");
            let body = to_bytes(response.into_body(), usize::MAX).await.expect("body");
            assert!(!body.is_empty(), "{path}");
        }
    }

    #[test]
    fn the_page_loads_only_its_own_parts() {
        // Relative to /api/v1/docs: the script, the style and the document beside it.
        assert!(PAGE.contains(r#"<script src="docs/app.js" defer></script>"#));
        assert!(PAGE.contains(r#"<link rel="stylesheet" href="docs/app.css">"#));
        assert!(SCRIPT.contains("fetch('openapi.json'"));
        for part in [PAGE, SCRIPT, STYLE] {
            // Nothing from elsewhere, and nothing a `default-src 'self'` policy would block.
            // (The one URL is the example value the script fills in for `format: uri`.)
            assert!(!part.replace("https://example.com/", "").contains("://"), "external reference");
            assert!(!part.contains("innerHTML") && !part.contains("eval("), "HTML strings or eval");
            assert!(!part.contains("style=\""), "inline style attribute");
        }
        assert_eq!(PAGE.matches("<script").count(), 1, "inline script");
        assert!(!PAGE.contains("<style"), "inline style");
    }
}
