//! The README's configuration table is the operators' reference: every setting the config
//! struct reads must be documented there, and nothing documented may be made up.
use std::collections::BTreeSet;
use warden_common::Config;

fn documented() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README.md");
    let mut names = BTreeSet::new();
    for line in readme.lines().filter(|l| l.starts_with("| `WARDEN_")) {
        let cell = line.split('|').nth(1).unwrap_or_default();
        let tokens: Vec<&str> = cell.split('`').skip(1).step_by(2).collect();
        let Some(first) = tokens.first() else { continue };
        let segments: Vec<&str> = first.split('_').collect();
        names.insert((*first).to_owned());
        // Shorthands in one row: "`…_USERNAME` / `_PASSWORD`" replaces the last segment,
        // "`WARDEN_AUTH_ENDPOINTS`, `_TOKEN_`" the one before it.
        for short in &tokens[1..] {
            let mut expanded = segments.clone();
            let n = expanded.len();
            match short.strip_prefix('_').and_then(|s| s.strip_suffix('_')) {
                Some(middle) => expanded[n - 2] = middle,
                None => expanded[n - 1] = short.trim_start_matches('_'),
            }
            names.insert(expanded.join("_"));
        }
    }
    names
}

fn read_by_config() -> BTreeSet<String> {
    let value = serde_json::to_value(Config::default()).expect("config serializes");
    value.as_object().expect("an object").keys().map(|k| format!("WARDEN_{}", k.to_uppercase())).collect()
}

#[test]
fn every_setting_is_documented_in_the_readme() {
    let documented = documented();
    let missing: Vec<_> = read_by_config().into_iter().filter(|name| !documented.contains(name)).collect();
    assert!(missing.is_empty(), "settings missing from the README table: {missing:?}");
}

#[test]
fn nothing_documented_is_made_up() {
    let read = read_by_config();
    let extra: Vec<_> = documented().into_iter().filter(|name| !read.contains(name)).collect();
    assert!(extra.is_empty(), "documented but not read by the config: {extra:?}");
}
