//! Turns matcher verdicts into the decisions callers see: an error code and a reason naming
//! the role and entry that decided.
use crate::api::Decision;
use crate::graph::RoleGraph;
use crate::matcher::{Scopes, Verdict, evaluate};
use warden_common::ErrorCode;

/// Decides every requested permission, in order, for a user holding `direct` roles.
pub(crate) fn decide(
    graph: &RoleGraph,
    direct: &[String],
    permissions: &[String],
    scopes: Option<&[String]>,
) -> Vec<Decision> {
    let held = graph.held(direct);
    let scopes = scopes.map(Scopes::parse);
    permissions
        .iter()
        .map(|permission| {
            let (code, reason) = match evaluate(permission, &held, scopes.as_ref()) {
                Verdict::Granted(h) => (None, format!("granted by role {} ({})", h.role, h.entry.text())),
                Verdict::Denied(h) => {
                    (Some(ErrorCode::PolicyViolation), format!("denied by role {} ({})", h.role, h.entry.text()))
                }
                Verdict::OutOfScope(_) => (Some(ErrorCode::AccessDenied), "not within the api key's scopes".to_owned()),
                Verdict::Malformed => (Some(ErrorCode::InsufficientPermissions), "malformed permission".to_owned()),
                Verdict::NoGrant if direct.is_empty() => {
                    (Some(ErrorCode::InsufficientPermissions), "user has no roles".to_owned())
                }
                Verdict::NoGrant => (Some(ErrorCode::InsufficientPermissions), format!("no role grants {permission}")),
            };
            Decision { permission: permission.clone(), allowed: code.is_none(), code, reason }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Role;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn graph() -> RoleGraph {
        let role = |name: &str, permissions: &[&str], inherits: &[&str]| Role {
            name: name.into(),
            permissions: strings(permissions),
            inherits: strings(inherits),
            builtin: false,
        };
        RoleGraph::new(
            3,
            [role("auditor", &["!users:delete"], &[]), role("editor", &["docs:*", "users:*"], &["auditor"])],
        )
    }

    fn one(direct: &[&str], permission: &str, scopes: Option<&[&str]>) -> Decision {
        let scopes = scopes.map(strings);
        let mut decisions = decide(&graph(), &strings(direct), &strings(&[permission]), scopes.as_deref());
        assert_eq!(decisions.len(), 1);
        decisions.remove(0)
    }

    #[test]
    fn grants_name_role_and_entry() {
        let d = one(&["editor"], "docs:read", None);
        assert_eq!((d.allowed, d.code, d.reason.as_str()), (true, None, "granted by role editor (docs:*)"));
        assert_eq!(d.permission, "docs:read");
    }

    #[test]
    fn inherited_denies_are_policy_violations() {
        let d = one(&["editor"], "users:delete", None);
        assert!(!d.allowed);
        assert_eq!(d.code, Some(ErrorCode::PolicyViolation));
        assert_eq!(d.reason, "denied by role auditor (!users:delete)");
    }

    #[test]
    fn refusals_carry_their_codes() {
        let cases = [
            (&["editor"][..], "billing:read", None, ErrorCode::InsufficientPermissions, "no role grants billing:read"),
            (&[][..], "docs:read", None, ErrorCode::InsufficientPermissions, "user has no roles"),
            (&["editor"][..], "docs", None, ErrorCode::InsufficientPermissions, "malformed permission"),
            (
                &["editor"][..],
                "docs:write",
                Some(&["docs:read"][..]),
                ErrorCode::AccessDenied,
                "not within the api key's scopes",
            ),
        ];
        for (direct, permission, scopes, code, reason) in cases {
            let d = one(direct, permission, scopes);
            assert!(!d.allowed, "{permission}");
            assert_eq!((d.code, d.reason.as_str()), (Some(code), reason), "{permission}");
        }
    }

    #[test]
    fn decisions_follow_request_order() {
        let permissions = strings(&["users:delete", "docs:read", "x"]);
        let decisions = decide(&graph(), &strings(&["editor"]), &permissions, None);
        let got: Vec<(&str, bool)> = decisions.iter().map(|d| (d.permission.as_str(), d.allowed)).collect();
        assert_eq!(got, [("users:delete", false), ("docs:read", true), ("x", false)]);
    }
}
