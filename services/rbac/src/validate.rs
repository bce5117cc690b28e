//! Input limits and syntax checks for role definitions and permission checks.
use crate::api::NewRole;
use crate::matcher::{Entry, MAX_PERMISSION_LEN, is_name};
use warden_common::{Error, Result};

/// Longest role name, in bytes.
pub(crate) const MAX_ROLE_NAME_LEN: usize = 64;
/// Most entries one role may hold.
pub(crate) const MAX_ENTRIES_PER_ROLE: usize = 256;
/// Most roles one role may inherit directly.
pub(crate) const MAX_PARENTS: usize = 32;
/// Most permissions decided by one call; bounds the work a single request can ask for.
pub(crate) const MAX_CHECKED_PERMISSIONS: usize = 256;

/// Role names use the permission segment alphabet (`[a-z0-9_.-]+`), without wildcards.
pub(crate) fn is_role_name(name: &str) -> bool {
    name.len() <= MAX_ROLE_NAME_LEN && is_name(name)
}

/// Checks a role to create and normalises it: entries and parents sorted and deduplicated.
pub(crate) fn new_role(mut role: NewRole) -> Result<NewRole> {
    if !is_role_name(&role.name) {
        return Err(Error::validation(format!(
            "role name must be 1 to {MAX_ROLE_NAME_LEN} characters of a-z, 0-9, '_', '.' and '-'"
        )));
    }
    if role.permissions.len() > MAX_ENTRIES_PER_ROLE {
        return Err(Error::validation(format!("a role holds at most {MAX_ENTRIES_PER_ROLE} permissions")));
    }
    if let Some(bad) = role.permissions.iter().find(|p| Entry::parse(p).is_none()) {
        // Echo the entry only when it is short enough to be worth reading.
        let detail = if bad.len() <= MAX_PERMISSION_LEN + 1 {
            format!("invalid permission {bad:?}: expected resource:action, !resource:action or *")
        } else {
            format!("a permission is longer than {MAX_PERMISSION_LEN} characters")
        };
        return Err(Error::validation(detail));
    }
    if role.inherits.len() > MAX_PARENTS {
        return Err(Error::validation(format!("a role inherits at most {MAX_PARENTS} roles")));
    }
    if role.inherits.iter().any(|p| !is_role_name(p)) {
        return Err(Error::validation("inherited role names must be valid role names"));
    }
    if role.inherits.contains(&role.name) {
        return Err(Error::validation("a role cannot inherit itself"));
    }
    for list in [&mut role.permissions, &mut role.inherits] {
        list.sort_unstable();
        list.dedup();
    }
    Ok(role)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_common::ErrorCode;

    fn role(name: &str, permissions: &[&str], inherits: &[&str]) -> NewRole {
        NewRole {
            name: name.into(),
            permissions: permissions.iter().map(|s| s.to_string()).collect(),
            inherits: inherits.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn normalises_valid_roles() {
        let ok = new_role(role("editor", &["docs:*", "!docs:delete", "docs:*"], &["viewer", "base", "viewer"]));
        let ok = ok.expect("valid");
        assert_eq!(ok.permissions, ["!docs:delete", "docs:*"]);
        assert_eq!(ok.inherits, ["base", "viewer"]);
    }

    #[test]
    fn rejects_bad_roles_as_validation_errors() {
        let long = "r".repeat(MAX_ROLE_NAME_LEN + 1);
        let many: Vec<String> = (0..=MAX_ENTRIES_PER_ROLE).map(|i| format!("r{i}:read")).collect();
        let cases = [
            role("", &[], &[]),
            role("Editor", &[], &[]),
            role("ed itor", &[], &[]),
            role("*", &[], &[]),
            role(&long, &[], &[]),
            role("editor", &["docs"], &[]),
            role("editor", &["docs:Read"], &[]),
            role("editor", &["!!docs:read"], &[]),
            role("editor", &[], &["Viewer"]),
            role("editor", &[], &["editor"]),
            NewRole { name: "editor".into(), permissions: many, inherits: Vec::new() },
        ];
        for case in cases {
            let err = new_role(case.clone()).expect_err(&format!("{case:?}"));
            assert_eq!(err.code, ErrorCode::ValidationError, "{case:?}");
        }
    }
}
