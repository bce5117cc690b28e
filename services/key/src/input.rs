//! Checks on a key request before anything is stored.
use crate::error::KeyError;

pub(crate) const MAX_NAME_CHARS: usize = 100;
pub(crate) const MAX_SCOPES: usize = 100;
const MAX_SCOPE_LEN: usize = 200;
pub(crate) const MAX_RATE_LIMIT: u32 = 1_000_000;
/// 100 years: far beyond any sensible key lifetime, well inside the time crate's range.
pub(crate) const MAX_EXPIRES_IN: i64 = 100 * 366 * 86_400;

/// The trimmed name: at most 100 characters as sent, not blank, without control characters.
pub(crate) fn name(name: &str) -> Result<String, KeyError> {
    // Control characters and the length are checked before trimming, so both rules are ones
    // the OpenAPI document can state (a pattern, a maxLength). Counting after trimming let
    // schemathesis send 101 characters whose first was a no-break space, and have them
    // accepted.
    if name.chars().any(char::is_control) {
        return Err(KeyError::Validation("name must not contain control characters".into()));
    }
    let trimmed = name.trim();
    if trimmed.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(KeyError::Validation(format!("name must be 1 to {MAX_NAME_CHARS} characters")));
    }
    Ok(trimmed.to_owned())
}

/// Scopes in SPEC permission syntax (`resource:action`, `*` segments, or `*`), deduplicated
/// in order. Deny entries (`!…`) belong to roles, not keys.
pub(crate) fn scopes(scopes: &[String]) -> Result<Vec<String>, KeyError> {
    if scopes.len() > MAX_SCOPES {
        return Err(KeyError::Validation(format!("at most {MAX_SCOPES} scopes")));
    }
    let mut out: Vec<String> = Vec::with_capacity(scopes.len());
    for scope in scopes {
        if !is_permission(scope) {
            // The scope is caller input, not a secret; echoing it helps fix the request.
            let shown: String = scope.chars().take(MAX_SCOPE_LEN).collect();
            return Err(KeyError::Validation(format!("invalid scope {shown:?}: expected resource:action")));
        }
        if !out.contains(scope) {
            out.push(scope.clone());
        }
    }
    Ok(out)
}

fn is_permission(scope: &str) -> bool {
    if scope == "*" {
        return true;
    }
    if scope.len() > MAX_SCOPE_LEN {
        return false;
    }
    let segment = |s: &str| {
        s == "*" || (!s.is_empty() && s.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-')))
    };
    match scope.split_once(':') {
        Some((resource, action)) => segment(resource) && segment(action),
        None => false,
    }
}

pub(crate) fn expires_in(expires_in: Option<i64>) -> Result<Option<i64>, KeyError> {
    match expires_in {
        Some(s) if s <= 0 => Err(KeyError::Validation("expires_in must be greater than 0".into())),
        Some(s) if s > MAX_EXPIRES_IN => {
            Err(KeyError::Validation(format!("expires_in must be at most {MAX_EXPIRES_IN} seconds")))
        }
        other => Ok(other),
    }
}

pub(crate) fn rate_limit(limit: Option<u32>) -> Result<u32, KeyError> {
    match limit.unwrap_or(0) {
        n if n > MAX_RATE_LIMIT => {
            Err(KeyError::Validation(format!("rate_limit_per_minute must be at most {MAX_RATE_LIMIT}")))
        }
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn scope_syntax() {
        for ok in ["*", "users:read", "users:*", "*:read", "*:*", "api.v2-x_y:write"] {
            assert!(scopes(&strings(&[ok])).is_ok(), "{ok}");
        }
        for bad in
            ["", "users", "users:", ":read", "Users:read", "users:read:x", "!users:read", "users :read", "u*:read"]
        {
            assert!(matches!(scopes(&strings(&[bad])), Err(KeyError::Validation(_))), "{bad:?}");
        }
        assert_eq!(scopes(&strings(&["a:b", "a:b", "c:d"])).unwrap(), strings(&["a:b", "c:d"]));
        assert!(scopes(&vec!["a:b".to_owned(); MAX_SCOPES + 1]).is_err());
        assert!(scopes(&[format!("{}:b", "a".repeat(MAX_SCOPE_LEN))]).is_err());
    }

    #[test]
    fn name_length_is_counted_in_characters() {
        assert_eq!(name("  ci deploy ").unwrap(), "ci deploy");
        assert!(name("").is_err());
        assert!(name("   ").is_err());
        assert!(name(&"é".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(name(&"é".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(name("a\nb").is_err());
        assert!(name("\tci").is_err(), "a control character is refused even where trimming would drop it");
        let padded = format!("\u{a0}{}", "x".repeat(MAX_NAME_CHARS));
        assert!(name(&padded).is_err(), "the length is the one sent, as the schema's maxLength says");
    }

    #[test]
    fn numbers() {
        assert!(expires_in(Some(0)).is_err());
        assert!(expires_in(Some(-5)).is_err());
        assert!(expires_in(Some(MAX_EXPIRES_IN + 1)).is_err());
        assert_eq!(expires_in(Some(60)).unwrap(), Some(60));
        assert_eq!(expires_in(None).unwrap(), None);
        assert_eq!(rate_limit(None).unwrap(), 0);
        assert_eq!(rate_limit(Some(MAX_RATE_LIMIT)).unwrap(), MAX_RATE_LIMIT);
        assert!(rate_limit(Some(MAX_RATE_LIMIT + 1)).is_err());
    }
}
