//! The OpenAPI 3.1 document of the REST API, maintained by hand beside the route table;
//! a test checks that every route of the table is documented.
pub const DOCUMENT: &str = include_str!("../openapi.json");
