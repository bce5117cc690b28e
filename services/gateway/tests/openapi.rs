//! The OpenAPI document served at `/api/v1/openapi.json` is maintained by hand beside the route
//! table; these tests keep the two in step and the document internally consistent. Each check
//! returns the problems it finds, so the last test can show that a broken document is caught.
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use warden_gateway::{Access, OPENAPI_DOCUMENT, table};

const HTTP_METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn document() -> Value {
    serde_json::from_str(OPENAPI_DOCUMENT).expect("openapi.json is valid JSON")
}

/// (lowercased method, path) of every route in the table, with its access.
fn routes() -> Vec<(String, String, Access)> {
    table().into_iter().map(|r| (r.method.as_str().to_lowercase(), r.path.to_owned(), r.access)).collect()
}

/// Every operation of the document, keyed by (method, path).
fn operations(doc: &Value) -> BTreeMap<(String, String), &Value> {
    let mut out = BTreeMap::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in HTTP_METHODS {
                if let Some(operation) = item.get(method) {
                    out.insert((method.to_owned(), path.clone()), operation);
                }
            }
        }
    }
    out
}

/// Routes of the table missing from the document, and operations the table lacks.
fn route_problems(doc: &Value, routes: &[(String, String, Access)]) -> Vec<String> {
    let documented: BTreeSet<(String, String)> = operations(doc).into_keys().collect();
    let declared: BTreeSet<(String, String)> = routes.iter().map(|(m, p, _)| (m.clone(), p.clone())).collect();
    let mut problems = Vec::new();
    for (method, path) in declared.difference(&documented) {
        problems.push(format!("route {} {path} is not documented", method.to_uppercase()));
    }
    for (method, path) in documented.difference(&declared) {
        problems.push(format!("{} {path} is documented but not in the route table", method.to_uppercase()));
    }
    problems
}

/// Operations without an operationId, with a duplicate one, without responses, or with a path
/// parameter they do not declare.
fn operation_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut ids: BTreeMap<&str, (String, String)> = BTreeMap::new();
    for ((method, path), operation) in operations(doc) {
        let name = format!("{} {path}", method.to_uppercase());
        match operation["operationId"].as_str().filter(|id| !id.is_empty()) {
            None => problems.push(format!("{name} has no operationId")),
            Some(id) => {
                if let Some((m, p)) = ids.insert(id, (method.clone(), path.clone())) {
                    problems.push(format!("operationId {id} is used by {name} and {} {p}", m.to_uppercase()));
                }
            }
        }
        if operation["responses"].as_object().is_none_or(|r| r.is_empty()) {
            problems.push(format!("{name} has no responses"));
        }
        let declared: BTreeSet<&str> = doc["paths"][path.as_str()]["parameters"]
            .as_array()
            .into_iter()
            .chain(operation["parameters"].as_array())
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        for segment in path.split('/') {
            if let Some(param) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'))
                && !declared.contains(param)
            {
                problems.push(format!("{name} does not declare the path parameter {param}"));
            }
        }
    }
    problems
}

/// Every `$ref` in the document, with where it was found.
fn collect_refs<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "$ref"
                    && let Some(target) = child.as_str()
                {
                    out.push((at.clone(), target));
                } else {
                    collect_refs(child, format!("{at}/{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                collect_refs(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// `$ref`s that are not local JSON pointers into the document, or point at nothing.
fn ref_problems(doc: &Value) -> Vec<String> {
    let mut refs = Vec::new();
    collect_refs(doc, String::new(), &mut refs);
    refs.into_iter()
        .filter(|(_, target)| target.strip_prefix('#').and_then(|pointer| doc.pointer(pointer)).is_none())
        .map(|(at, target)| format!("$ref {target} at {at} does not resolve"))
        .collect()
}

/// Security requirements that contradict the route's declared access.
fn security_problems(doc: &Value, routes: &[(String, String, Access)]) -> Vec<String> {
    let operations = operations(doc);
    let mut problems = Vec::new();
    for (method, path, access) in routes {
        let Some(operation) = operations.get(&(method.clone(), path.clone())) else { continue };
        let name = format!("{} {path}", method.to_uppercase());
        let schemes: BTreeSet<String> = operation["security"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|requirement| {
                let keys: Vec<&str> = requirement.as_object().into_iter().flatten().map(|(k, _)| k.as_str()).collect();
                keys.join("+")
            })
            .collect();
        let expected: &[&str] = match access {
            // Public routes may still read an optional credential (logout, verify): not checked.
            Access::Public => continue,
            Access::Authenticated { api_keys: false } => &["bearer"],
            Access::Authenticated { api_keys: true } | Access::Permission(_) => &["apiKeyHeader", "bearer"],
        };
        let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        if schemes != expected {
            problems.push(format!("{name} ({access:?}) has security {schemes:?}, expected {expected:?}"));
        }
        if let Access::Permission(permission) = access
            && !operation["description"].as_str().unwrap_or_default().contains(permission)
        {
            problems.push(format!("{name} does not mention the permission {permission} in its description"));
        }
    }
    problems
}

#[test]
fn is_openapi_3_1_0() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Warden");
    assert!(doc["info"]["version"].is_string());
}

#[test]
fn documents_exactly_the_routes_of_the_table() {
    let problems = route_problems(&document(), &routes());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_operation_has_a_unique_id_and_responses() {
    let doc = document();
    assert!(!operations(&doc).is_empty());
    let problems = operation_problems(&doc);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_ref_resolves() {
    let problems = ref_problems(&document());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn security_follows_the_declared_access() {
    let problems = security_problems(&document(), &routes());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_checks_catch_a_broken_document() {
    let routes = routes();
    let (method, path, _) = &routes[0];

    // A route of the table missing from the document.
    let mut doc = document();
    doc["paths"][path.as_str()].as_object_mut().expect("path item").remove(method.as_str());
    assert!(route_problems(&doc, &routes).iter().any(|p| p.contains("is not documented")));

    // An operation the table lacks.
    let mut doc = document();
    doc["paths"]["/api/v1/not-a-route"] = serde_json::json!({
        "get": { "operationId": "ghost", "responses": { "204": { "description": "nothing" } } }
    });
    assert!(route_problems(&doc, &routes).iter().any(|p| p.contains("not in the route table")));

    // A duplicate operationId and an operation without responses.
    let mut doc = document();
    let operation = &mut doc["paths"][path.as_str()][method.as_str()];
    operation["operationId"] = serde_json::json!("getJwks");
    operation["responses"] = serde_json::json!({});
    let problems = operation_problems(&doc);
    assert!(problems.iter().any(|p| p.contains("operationId getJwks")), "{problems:#?}");
    assert!(problems.iter().any(|p| p.contains("has no responses")), "{problems:#?}");

    // A dangling $ref.
    let mut doc = document();
    doc["components"]["schemas"].as_object_mut().expect("schemas").remove("TokenPair");
    assert!(ref_problems(&doc).iter().any(|p| p.contains("#/components/schemas/TokenPair")));

    // A bearer-only route opened to API keys.
    let mut doc = document();
    doc["paths"]["/api/v1/auth/sessions"]["get"]["security"] = serde_json::json!([{ "apiKeyHeader": [] }]);
    assert!(security_problems(&doc, &routes).iter().any(|p| p.contains("/api/v1/auth/sessions")));
}
