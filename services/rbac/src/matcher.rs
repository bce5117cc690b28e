//! Pure permission matching (SPEC §3 "Permissions"), with no I/O so it can be tested exhaustively.
//!
//! A permission is `resource:action`; each segment is `[a-z0-9_.-]+` or `*`, and `*` alone is
//! shorthand for `*:*` (everything). A role entry is either a grant (`docs:*`) or a deny
//! (`!docs:delete`).
//!
//! A *requested* permission may itself contain `*` (asking "may I do every action on users?"),
//! so the two relations are deliberately asymmetric, both erring towards refusal:
//! - a grant must **cover** the request: every segment of the grant is `*` or equal, so
//!   `users:read` does not grant `users:*`;
//! - a deny applies when it **overlaps** the request: some concrete permission falls under
//!   both, so `!users:delete` refuses `users:*`.
//!
//! [`evaluate`] applies the precedence: malformed request, then deny, then grant, then scopes
//! ([`Scopes`]).

/// Longest accepted permission or entry, in bytes; anything longer is malformed.
pub const MAX_PERMISSION_LEN: usize = 128;

/// A wildcard segment.
const ANY: &str = "*";

/// A syntactically valid `resource:action`, borrowing its segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pattern<'a> {
    resource: &'a str,
    action: &'a str,
}

impl<'a> Pattern<'a> {
    /// Parses a permission; `None` when it is malformed (it must then never be allowed).
    pub fn parse(text: &'a str) -> Option<Self> {
        if text.len() > MAX_PERMISSION_LEN {
            return None;
        }
        if text == ANY {
            return Some(Pattern { resource: ANY, action: ANY });
        }
        let (resource, action) = text.split_once(':')?;
        (is_segment(resource) && is_segment(action)).then_some(Pattern { resource, action })
    }

    /// True when every permission this request names is granted by `self`.
    pub fn covers(&self, request: &Pattern<'_>) -> bool {
        segment_covers(self.resource, request.resource) && segment_covers(self.action, request.action)
    }

    /// True when at least one concrete permission falls under both patterns.
    pub fn overlaps(&self, other: &Pattern<'_>) -> bool {
        segment_overlaps(self.resource, other.resource) && segment_overlaps(self.action, other.action)
    }
}

fn segment_covers(pattern: &str, request: &str) -> bool {
    pattern == ANY || pattern == request
}

fn segment_overlaps(a: &str, b: &str) -> bool {
    a == ANY || b == ANY || a == b
}

/// True for a non-empty `[a-z0-9_.-]+` name or a lone `*`. Role names use the same alphabet.
pub fn is_segment(s: &str) -> bool {
    s == ANY || is_name(s)
}

/// True for a non-empty `[a-z0-9_.-]+` (no wildcard).
pub fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// One entry of a role (or of an API key's scopes): a grant or a `!`-prefixed deny.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    text: String,
    deny: bool,
    resource: String,
    action: String,
}

impl Entry {
    /// Parses `resource:action` or `!resource:action`; `None` when malformed.
    pub fn parse(text: &str) -> Option<Self> {
        let (deny, body) = match text.strip_prefix('!') {
            Some(body) => (true, body),
            None => (false, text),
        };
        let pattern = Pattern::parse(body)?;
        Some(Entry {
            text: text.to_owned(),
            deny,
            resource: pattern.resource.to_owned(),
            action: pattern.action.to_owned(),
        })
    }

    /// The entry as written, `!` included; reasons quote it.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_deny(&self) -> bool {
        self.deny
    }

    pub fn pattern(&self) -> Pattern<'_> {
        Pattern { resource: &self.resource, action: &self.action }
    }
}

/// An entry together with the role that holds it, so a decision can name both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held<'a> {
    pub role: &'a str,
    pub entry: &'a Entry,
}

/// The outcome for one requested permission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// The request is not a valid permission string.
    Malformed,
    /// A deny entry overlaps the request; it wins over every grant.
    Denied(Held<'a>),
    /// No grant covers the request.
    NoGrant,
    /// The roles allow it, but the API key's scopes do not.
    OutOfScope(Held<'a>),
    /// Allowed, by this grant.
    Granted(Held<'a>),
}

impl Verdict<'_> {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Granted(_))
    }
}

/// Decides one request against the entries a user holds, optionally narrowed by scopes
/// (`None`: no narrowing).
pub fn evaluate<'a>(request: &str, held: &[Held<'a>], scopes: Option<&Scopes>) -> Verdict<'a> {
    let Some(request) = Pattern::parse(request) else {
        return Verdict::Malformed;
    };
    if let Some(deny) = held.iter().find(|h| h.entry.deny && h.entry.pattern().overlaps(&request)) {
        return Verdict::Denied(*deny);
    }
    let Some(grant) = held.iter().find(|h| !h.entry.deny && h.entry.pattern().covers(&request)) else {
        return Verdict::NoGrant;
    };
    match scopes {
        Some(scopes) if !scopes.permits(&request) => Verdict::OutOfScope(*grant),
        _ => Verdict::Granted(*grant),
    }
}

/// An API key's scopes, parsed once per check. They use the entry syntax: a scope grant must
/// cover the request and no scope deny may overlap it, so an empty list allows nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scopes {
    /// `None` when some scope was malformed: we cannot tell what it was meant to narrow, so the
    /// whole list allows nothing rather than silently dropping a deny.
    entries: Option<Vec<Entry>>,
}

impl Scopes {
    pub fn parse(scopes: &[String]) -> Self {
        Scopes { entries: scopes.iter().map(|s| Entry::parse(s)).collect() }
    }

    /// True when the scopes let the request through.
    pub fn permits(&self, request: &Pattern<'_>) -> bool {
        let Some(entries) = &self.entries else { return false };
        !entries.iter().any(|e| e.deny && e.pattern().overlaps(request))
            && entries.iter().any(|e| !e.deny && e.pattern().covers(request))
    }
}

#[cfg(test)]
mod tests;
