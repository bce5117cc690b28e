//! docs/errors.md lists exactly the codes of the error table, each with its HTTP and gRPC
//! status, so the reference cannot drift from the code.
use warden_client::ErrorCode;

const ERRORS_MD: &str = include_str!("../../../docs/errors.md");

/// `PermissionDenied` → `PERMISSION_DENIED`, as gRPC names its codes.
fn grpc_name(code: tonic::Code) -> String {
    let mut name = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// The rows of the code table: (code, HTTP, gRPC).
fn rows() -> Vec<(String, String, String)> {
    let start = ERRORS_MD.find("## The codes").expect("a code table section");
    ERRORS_MD[start..]
        .lines()
        .skip_while(|l| !l.starts_with("| code |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(|c| c.trim().trim_matches('`')).collect();
            (cells[1].to_owned(), cells[2].to_owned(), cells[3].to_owned())
        })
        .collect()
}

#[test]
fn the_error_reference_matches_the_table() {
    let rows = rows();
    assert_eq!(rows.len(), ErrorCode::ALL.len(), "one row per code");
    for &code in ErrorCode::ALL {
        let row = rows.iter().find(|(c, _, _)| c == code.as_str()).unwrap_or_else(|| panic!("{code} is documented"));
        assert_eq!(row.1, code.http_status().to_string(), "{code}: HTTP status");
        assert_eq!(row.2, grpc_name(code.grpc_code()), "{code}: gRPC status");
    }
}
