//! Property tests of the matcher against a reference evaluator that works on explicit sets of
//! concrete permissions over a small universe, instead of on wildcard syntax.
use proptest::prelude::*;
use std::collections::BTreeSet;
use warden_rbac::matcher::{Entry, Held, Scopes, Verdict, evaluate};

const RESOURCES: [&str; 3] = ["users", "docs", "a.b-c_1"];
const ACTIONS: [&str; 3] = ["read", "write", "delete"];
/// A name no pattern spells, so `*` means more than the union of the named ones.
const OTHER: &str = "zz-other";
const MALFORMED: [&str; 10] =
    ["", "users", "Users:read", "users:read:x", "users:", ":read", "!users:read", "users:re*d", "**", "users: read"];

type Concrete = (String, String);

/// The concrete permissions a (valid) pattern names, or `None` when it is malformed.
fn expand(text: &str) -> Option<BTreeSet<Concrete>> {
    let (resource, action) = if text == "*" { ("*", "*") } else { text.split_once(':')? };
    let segment = |s: &str, names: &[&str]| -> Option<Vec<String>> {
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c);
        match s {
            "*" => Some(names.iter().chain([&OTHER]).map(|n| n.to_string()).collect()),
            s if !s.is_empty() && s.chars().all(valid) => Some(vec![s.to_owned()]),
            _ => None,
        }
    };
    let resources = segment(resource, &RESOURCES)?;
    let actions = segment(action, &ACTIONS)?;
    Some(resources.iter().flat_map(|r| actions.iter().map(move |a| (r.clone(), a.clone()))).collect())
}

/// (is deny, concrete set) of an entry.
fn expand_entry(text: &str) -> Option<(bool, BTreeSet<Concrete>)> {
    match text.strip_prefix('!') {
        Some(body) => Some((true, expand(body)?)),
        None => Some((false, expand(text)?)),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Malformed,
    Denied,
    NoGrant,
    OutOfScope,
    Granted,
}

fn permits(entries: &[(bool, BTreeSet<Concrete>)], request: &BTreeSet<Concrete>) -> bool {
    !entries.iter().any(|(deny, set)| *deny && !set.is_disjoint(request))
        && entries.iter().any(|(deny, set)| !*deny && request.is_subset(set))
}

fn reference(request: &str, held: &[String], scopes: Option<&[String]>) -> Kind {
    let Some(request) = expand(request) else { return Kind::Malformed };
    let held: Vec<_> = held.iter().map(|e| expand_entry(e).expect("generated entries are valid")).collect();
    if held.iter().any(|(deny, set)| *deny && !set.is_disjoint(&request)) {
        return Kind::Denied;
    }
    if !permits(&held, &request) {
        return Kind::NoGrant;
    }
    let in_scope = match scopes {
        None => true,
        Some(scopes) => match scopes.iter().map(|s| expand_entry(s)).collect::<Option<Vec<_>>>() {
            Some(scopes) => permits(&scopes, &request),
            None => false,
        },
    };
    if in_scope { Kind::Granted } else { Kind::OutOfScope }
}

fn kind(verdict: &Verdict<'_>) -> Kind {
    match verdict {
        Verdict::Malformed => Kind::Malformed,
        Verdict::Denied(_) => Kind::Denied,
        Verdict::NoGrant => Kind::NoGrant,
        Verdict::OutOfScope(_) => Kind::OutOfScope,
        Verdict::Granted(_) => Kind::Granted,
    }
}

fn well_formed() -> impl Strategy<Value = String> {
    let resource = prop_oneof![4 => proptest::sample::select(RESOURCES.to_vec()), 1 => Just("*")];
    let action = prop_oneof![4 => proptest::sample::select(ACTIONS.to_vec()), 1 => Just("*")];
    prop_oneof![12 => (resource, action).prop_map(|(r, a)| format!("{r}:{a}")), 1 => Just("*".to_owned())]
}

fn request() -> impl Strategy<Value = String> {
    prop_oneof![8 => well_formed(), 1 => proptest::sample::select(MALFORMED.to_vec()).prop_map(str::to_owned)]
}

fn entry() -> impl Strategy<Value = String> {
    (well_formed(), proptest::bool::weighted(0.25)).prop_map(|(p, deny)| if deny { format!("!{p}") } else { p })
}

fn scope() -> impl Strategy<Value = String> {
    prop_oneof![20 => entry(), 1 => proptest::sample::select(MALFORMED.to_vec()).prop_map(str::to_owned)]
}

fn decide(request: &str, entries: &[String], scopes: Option<&[String]>) -> (Kind, Option<(bool, String)>) {
    let parsed: Vec<Entry> = entries.iter().map(|e| Entry::parse(e).expect("valid entry")).collect();
    let held: Vec<Held<'_>> = parsed.iter().map(|entry| Held { role: "r", entry }).collect();
    let scopes = scopes.map(Scopes::parse);
    let verdict = evaluate(request, &held, scopes.as_ref());
    let deciding = match verdict {
        Verdict::Denied(h) | Verdict::OutOfScope(h) | Verdict::Granted(h) => {
            Some((h.entry.is_deny(), h.entry.text().to_owned()))
        }
        Verdict::Malformed | Verdict::NoGrant => None,
    };
    (kind(&verdict), deciding)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn matches_the_set_based_reference(
        request in request(),
        entries in proptest::collection::vec(entry(), 0..6),
        scopes in proptest::option::of(proptest::collection::vec(scope(), 0..4)),
    ) {
        let (got, deciding) = decide(&request, &entries, scopes.as_deref());
        prop_assert_eq!(&got, &reference(&request, &entries, scopes.as_deref()));
        // The entry named in the reason really decided: a deny for Denied, a covering grant otherwise.
        if let Some((is_deny, text)) = deciding {
            let (_, set) = expand_entry(&text).expect("valid");
            let request = expand(&request).expect("decided requests are valid");
            prop_assert_eq!(is_deny, got == Kind::Denied);
            let matched = if is_deny { !set.is_disjoint(&request) } else { request.is_subset(&set) };
            prop_assert!(matched, "{} does not decide the request", text);
        }
    }

    #[test]
    fn scopes_and_denies_never_widen(
        request in request(),
        entries in proptest::collection::vec(entry(), 0..6),
        scopes in proptest::collection::vec(scope(), 0..4),
        extra_deny in well_formed(),
    ) {
        let unscoped = decide(&request, &entries, None).0 == Kind::Granted;
        let scoped = decide(&request, &entries, Some(&scopes)).0 == Kind::Granted;
        prop_assert!(!scoped || unscoped);
        let mut with_deny = entries.clone();
        with_deny.push(format!("!{extra_deny}"));
        prop_assert!(decide(&request, &with_deny, None).0 != Kind::Granted || unscoped);
        prop_assert!(expand(&request).is_some() || !unscoped);
    }
}
