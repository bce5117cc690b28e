//! The role graph: every role's own entries and parents, as one immutable snapshot of the
//! role tables tagged with the generation it was read at (see `cache`).
use crate::api::Role;
use crate::matcher::{Entry, Held};
use std::collections::{HashMap, HashSet, VecDeque};

#[derive(Debug, Default)]
struct RoleDef {
    entries: Vec<Entry>,
    inherits: Vec<String>,
}

#[derive(Debug, Default)]
pub(crate) struct RoleGraph {
    /// The `role_generation` value read before the role tables, so the snapshot is at least
    /// this new.
    pub(crate) generation: i64,
    roles: HashMap<String, RoleDef>,
}

impl RoleGraph {
    pub(crate) fn new(generation: i64, roles: impl IntoIterator<Item = Role>) -> Self {
        let roles = roles.into_iter().map(|role| (role.name.clone(), RoleDef::from_role(role))).collect();
        RoleGraph { generation, roles }
    }

    /// The entries held through `direct` roles and everything they inherit, each with the role
    /// that holds it, breadth-first from the direct roles in the given order.
    ///
    /// Creation only accepts existing parents, so the stored graph has no cycles; the visited
    /// set still guards against one (hand-edited rows), which bounds the walk by the number of
    /// roles. There is deliberately no depth limit: cutting the walk short would drop denies.
    pub(crate) fn held<'a>(&'a self, direct: &[String]) -> Vec<Held<'a>> {
        let mut visited: HashSet<&str> = HashSet::new();
        let mut queue: VecDeque<&str> = direct.iter().map(String::as_str).collect();
        let mut held = Vec::new();
        while let Some(name) = queue.pop_front() {
            if !visited.insert(name) {
                continue;
            }
            // An assignment to a role missing from the snapshot grants nothing.
            let Some((name, def)) = self.roles.get_key_value(name) else { continue };
            held.extend(def.entries.iter().map(|entry| Held { role: name.as_str(), entry }));
            queue.extend(def.inherits.iter().map(String::as_str).filter(|p| !visited.contains(p)));
        }
        held
    }

    /// Effective entries (grants and denies, as written), sorted and deduplicated.
    pub(crate) fn effective(&self, direct: &[String]) -> Vec<String> {
        let mut entries: Vec<String> = self.held(direct).iter().map(|h| h.entry.text().to_owned()).collect();
        entries.sort_unstable();
        entries.dedup();
        entries
    }
}

impl RoleDef {
    fn from_role(role: Role) -> Self {
        let parsed: Vec<Option<Entry>> = role.permissions.iter().map(|p| Entry::parse(p)).collect();
        let mut entries: Vec<Entry> = parsed.iter().flatten().cloned().collect();
        if entries.len() != parsed.len() {
            // Only a hand-edited row gets here. A malformed entry may have been meant as a
            // deny, so the role keeps its denies and loses its grants: fail closed.
            tracing::error!(role = %role.name, "role has malformed permission entries; its grants are ignored");
            entries.retain(Entry::is_deny);
        }
        RoleDef { entries, inherits: role.inherits }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, permissions: &[&str], inherits: &[&str]) -> Role {
        Role {
            name: name.into(),
            permissions: permissions.iter().map(|s| s.to_string()).collect(),
            inherits: inherits.iter().map(|s| s.to_string()).collect(),
            builtin: false,
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn inherited_entries_name_the_role_that_holds_them() {
        let graph = RoleGraph::new(
            1,
            [role("viewer", &["docs:read"], &[]), role("editor", &["docs:write", "!docs:delete"], &["viewer"])],
        );
        let direct = names(&["editor"]);
        let held: Vec<(&str, &str)> = graph.held(&direct).iter().map(|h| (h.role, h.entry.text())).collect();
        assert_eq!(held, [("editor", "docs:write"), ("editor", "!docs:delete"), ("viewer", "docs:read")]);
        assert_eq!(graph.effective(&direct), ["!docs:delete", "docs:read", "docs:write"]);
    }

    #[test]
    fn cycles_and_diamonds_visit_each_role_once() {
        let graph = RoleGraph::new(
            1,
            [
                role("a", &["a:x"], &["b", "c"]),
                role("b", &["b:x"], &["d"]),
                role("c", &["c:x"], &["d"]),
                role("d", &["d:x"], &["a"]),
            ],
        );
        let held = graph.held(&names(&["a", "a"]));
        let mut roles: Vec<&str> = held.iter().map(|h| h.role).collect();
        roles.sort_unstable();
        assert_eq!(roles, ["a", "b", "c", "d"]);
    }

    #[test]
    fn unknown_roles_grant_nothing() {
        let graph = RoleGraph::new(1, [role("a", &["a:x"], &["ghost"])]);
        assert_eq!(graph.effective(&names(&["ghost", "a"])), ["a:x"]);
        assert!(graph.held(&[]).is_empty());
    }

    #[test]
    fn a_malformed_stored_entry_keeps_denies_and_drops_grants() {
        let graph = RoleGraph::new(1, [role("broken", &["*", "!users:delete", "Not Valid"], &[])]);
        assert_eq!(graph.effective(&names(&["broken"])), ["!users:delete"]);
    }
}
