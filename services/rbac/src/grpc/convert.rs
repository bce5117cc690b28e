//! Conversions between prost messages and domain types.
use crate::api::{Decision, Role};
use uuid::Uuid;
use warden_common::{Error, ErrorCode, Result};
use warden_proto::rbac::v1 as pb;

pub(super) fn parse_user_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| Error::validation("user_id must be a uuid"))
}

impl From<Role> for pb::Role {
    fn from(role: Role) -> Self {
        pb::Role { name: role.name, permissions: role.permissions, inherits: role.inherits, builtin: role.builtin }
    }
}

impl From<pb::Role> for Role {
    fn from(role: pb::Role) -> Self {
        Role { name: role.name, permissions: role.permissions, inherits: role.inherits, builtin: role.builtin }
    }
}

impl From<Decision> for pb::Decision {
    fn from(d: Decision) -> Self {
        let code = d.code.map(|c| c.as_str().to_owned()).unwrap_or_default();
        pb::Decision { permission: d.permission, allowed: d.allowed, code, reason: d.reason }
    }
}

impl TryFrom<pb::Decision> for Decision {
    type Error = Error;

    /// Rejects a decision whose code contradicts `allowed`: a confused peer must not grant.
    fn try_from(d: pb::Decision) -> Result<Self> {
        let code = match (d.allowed, d.code.as_str()) {
            (true, "") => None,
            (false, code) => Some(ErrorCode::parse(code).ok_or_else(|| bad_peer("unknown decision code"))?),
            (true, _) => return Err(bad_peer("allowed decision carries an error code")),
        };
        Ok(Decision { permission: d.permission, allowed: d.allowed, code, reason: d.reason })
    }
}

pub(super) fn bad_peer(what: &str) -> Error {
    Error::internal(anyhow::anyhow!("rbac peer answered inconsistently: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_round_trip() {
        for d in [
            Decision { permission: "a:b".into(), allowed: true, code: None, reason: "granted".into() },
            Decision {
                permission: "a:c".into(),
                allowed: false,
                code: Some(ErrorCode::PolicyViolation),
                reason: "denied".into(),
            },
        ] {
            assert_eq!(Decision::try_from(pb::Decision::from(d.clone())).expect("valid"), d);
        }
    }

    #[test]
    fn inconsistent_decisions_are_errors() {
        let allowed_with_code = pb::Decision {
            permission: "a:b".into(),
            allowed: true,
            code: "policy_violation".into(),
            reason: String::new(),
        };
        let denied_without_code = pb::Decision { allowed: false, code: String::new(), ..allowed_with_code.clone() };
        for d in [allowed_with_code, denied_without_code] {
            assert_eq!(Decision::try_from(d).expect_err("inconsistent").code, ErrorCode::Internal);
        }
    }

    #[test]
    fn user_ids_must_be_uuids() {
        assert_eq!(parse_user_id("nope").expect_err("invalid").code, ErrorCode::ValidationError);
        let id = Uuid::new_v4();
        assert_eq!(parse_user_id(&id.to_string()).expect("valid"), id);
    }
}
