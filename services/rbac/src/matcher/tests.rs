use super::*;

fn entry(text: &str) -> Entry {
    Entry::parse(text).unwrap_or_else(|| panic!("valid entry {text}"))
}

fn pattern(text: &str) -> Pattern<'_> {
    Pattern::parse(text).unwrap_or_else(|| panic!("valid pattern {text}"))
}

fn scopes(list: &[&str]) -> Scopes {
    Scopes::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

#[test]
fn accepts_well_formed_permissions() {
    for ok in ["users:read", "users:*", "*:read", "*:*", "*", "a.b-c_d:x1", "0:9"] {
        assert!(Pattern::parse(ok).is_some(), "{ok}");
    }
    assert_eq!(pattern("*"), pattern("*:*"));
}

#[test]
fn rejects_malformed_permissions() {
    let long = format!("{}:read", "r".repeat(MAX_PERMISSION_LEN));
    let bad = [
        "",
        "users",
        "users:",
        ":read",
        ":",
        "Users:read",
        "users:read:x",
        "users :read",
        " users:read",
        "user*:read",
        "users:re*d",
        "**",
        "*:",
        "!users:read",
        "users:réad",
        "users\0:read",
        &long,
    ];
    for bad in bad {
        assert!(Pattern::parse(bad).is_none(), "{bad:?}");
        assert!(Entry::parse(bad).is_none() || bad.starts_with('!'), "{bad:?}");
    }
    assert!(Entry::parse("!!users:read").is_none());
    assert!(Entry::parse("!").is_none());
}

#[test]
fn entries_keep_their_text_and_polarity() {
    let deny = entry("!users:delete");
    assert!(deny.is_deny());
    assert_eq!(deny.text(), "!users:delete");
    assert_eq!(deny.pattern(), pattern("users:delete"));
    assert!(!entry("*").is_deny());
}

#[test]
fn wildcard_grants_cover_narrower_requests_only() {
    assert!(pattern("users:*").covers(&pattern("users:read")));
    assert!(pattern("users:*").covers(&pattern("users:*")));
    assert!(!pattern("users:*").covers(&pattern("docs:read")));
    assert!(pattern("*").covers(&pattern("users:delete")));
    assert!(pattern("*").covers(&pattern("*")));
    assert!(pattern("*:read").covers(&pattern("docs:read")));
    assert!(!pattern("*:read").covers(&pattern("docs:write")));
    // A concrete grant never covers a wildcard request.
    assert!(!pattern("users:read").covers(&pattern("users:*")));
    assert!(!pattern("users:*").covers(&pattern("*")));
}

#[test]
fn denies_apply_when_they_overlap() {
    assert!(pattern("users:delete").overlaps(&pattern("users:*")));
    assert!(pattern("users:delete").overlaps(&pattern("*")));
    assert!(pattern("*:delete").overlaps(&pattern("users:*")));
    assert!(!pattern("users:delete").overlaps(&pattern("users:read")));
    assert!(!pattern("users:*").overlaps(&pattern("docs:*")));
}

#[test]
fn deny_beats_grant_whatever_the_order() {
    let (grant, deny) = (entry("*"), entry("!users:delete"));
    for held in [
        [Held { role: "admin", entry: &grant }, Held { role: "auditor", entry: &deny }],
        [Held { role: "auditor", entry: &deny }, Held { role: "admin", entry: &grant }],
    ] {
        assert_eq!(evaluate("users:delete", &held, None), Verdict::Denied(Held { role: "auditor", entry: &deny }));
        assert_eq!(evaluate("users:read", &held, None), Verdict::Granted(Held { role: "admin", entry: &grant }));
        // Asking for every action on users includes the denied one.
        assert_eq!(evaluate("users:*", &held, None), Verdict::Denied(Held { role: "auditor", entry: &deny }));
    }
}

#[test]
fn no_matching_grant_is_no_grant() {
    let grant = entry("docs:read");
    let held = [Held { role: "reader", entry: &grant }];
    assert_eq!(evaluate("docs:write", &held, None), Verdict::NoGrant);
    assert_eq!(evaluate("docs:*", &held, None), Verdict::NoGrant);
    assert_eq!(evaluate("docs:read", &[], None), Verdict::NoGrant);
}

#[test]
fn malformed_requests_are_never_allowed() {
    let grant = entry("*");
    let held = [Held { role: "admin", entry: &grant }];
    for bad in ["", "users", "USERS:READ", "users:read:x", "!users:read"] {
        assert_eq!(evaluate(bad, &held, None), Verdict::Malformed, "{bad:?}");
    }
}

#[test]
fn scopes_narrow_but_never_widen() {
    let grant = entry("users:*");
    let held = [Held { role: "editor", entry: &grant }];
    let narrowed = scopes(&["users:read"]);
    assert!(evaluate("users:read", &held, Some(&narrowed)).is_allowed());
    assert_eq!(evaluate("users:write", &held, Some(&narrowed)), Verdict::OutOfScope(held[0]));
    // A wide scope does not add what the roles lack.
    assert_eq!(evaluate("docs:read", &held, Some(&scopes(&["*"]))), Verdict::NoGrant);
    // No scopes at all: nothing is within them.
    assert_eq!(evaluate("users:read", &held, Some(&scopes(&[]))), Verdict::OutOfScope(held[0]));
}

#[test]
fn scope_denies_and_malformed_scopes_fail_closed() {
    let grant = entry("*");
    let held = [Held { role: "admin", entry: &grant }];
    let with_deny = scopes(&["users:*", "!users:delete"]);
    assert!(evaluate("users:read", &held, Some(&with_deny)).is_allowed());
    assert!(!evaluate("users:delete", &held, Some(&with_deny)).is_allowed());
    assert!(!evaluate("users:*", &held, Some(&with_deny)).is_allowed());
    let malformed = scopes(&["users:*", "!Users:delete"]);
    assert!(!evaluate("users:read", &held, Some(&malformed)).is_allowed());
}
