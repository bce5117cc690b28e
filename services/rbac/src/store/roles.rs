//! Role definitions: `roles`, `role_permissions` and `role_inherits`.
use super::{RoleInherits, RolePermissions, Roles, UserRoles, bump_generation, generation};
use crate::api::{NewRole, Role};
use crate::graph::RoleGraph;
use sea_orm::sea_query::{Cond, Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, IsolationLevel, QueryResult, SqlErr, StreamTrait};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use tokio_stream::StreamExt;
use warden_common::db::Db;
use warden_common::{Error, ErrorCode, Result};

pub(crate) fn not_found(name: &str) -> Error {
    Error::new(ErrorCode::RoleNotFound, format!("role {name} not found"))
}

/// Reads the whole role graph as one snapshot, tagged with the generation read first.
pub(crate) async fn load_graph(db: &Db) -> Result<RoleGraph, DbErr> {
    // One snapshot for all four reads: SQLite transactions already are; PostgreSQL's default
    // (read committed) gives each statement its own.
    let isolation = (db.get_database_backend() == DbBackend::Postgres).then_some(IsolationLevel::RepeatableRead);
    let txn = db.begin_with_config(isolation, None).await?;
    let generation = generation(&txn).await?.ok_or_else(|| DbErr::RecordNotFound("role_generation".into()))?;
    let roles = load(&txn, None).await?;
    txn.commit().await?;
    Ok(RoleGraph::new(generation, roles))
}

/// All roles sorted by name, or only `only`; entries and parents sorted.
pub(crate) async fn load(db: &(impl ConnectionTrait + StreamTrait), only: Option<&str>) -> Result<Vec<Role>, DbErr> {
    let mut roles = Query::select();
    roles.columns([Roles::Name, Roles::Builtin]).from(Roles::Table).order_by(Roles::Name, Order::Asc);
    let mut permissions = Query::select();
    permissions
        .columns([RolePermissions::Role, RolePermissions::Permission])
        .from(RolePermissions::Table)
        .order_by(RolePermissions::Permission, Order::Asc);
    let mut inherits = Query::select();
    inherits
        .columns([RoleInherits::Role, RoleInherits::Parent])
        .from(RoleInherits::Table)
        .order_by(RoleInherits::Parent, Order::Asc);
    if let Some(name) = only {
        roles.and_where(Expr::col(Roles::Name).eq(name));
        permissions.and_where(Expr::col(RolePermissions::Role).eq(name));
        inherits.and_where(Expr::col(RoleInherits::Role).eq(name));
    }

    // Rows are streamed, not collected: with 10,000 roles a collected result was tens of MB
    // of row objects per reload, which glibc's arenas then kept.
    let mut by_name = BTreeMap::new();
    each_row(db, &roles, |row| {
        let name: String = row.try_get("", "name")?;
        let builtin = row.try_get("", "builtin")?;
        by_name.insert(name.clone(), Role { name, permissions: Vec::new(), inherits: Vec::new(), builtin });
        Ok(())
    })
    .await?;
    if by_name.is_empty() {
        return Ok(Vec::new());
    }
    each_row(db, &permissions, |row| {
        if let Some(role) = by_name.get_mut(&row.try_get::<String>("", "role")?) {
            role.permissions.push(row.try_get("", "permission")?);
        }
        Ok(())
    })
    .await?;
    each_row(db, &inherits, |row| {
        if let Some(role) = by_name.get_mut(&row.try_get::<String>("", "role")?) {
            role.inherits.push(row.try_get("", "parent")?);
        }
        Ok(())
    })
    .await?;
    Ok(by_name.into_values().collect())
}

/// Runs `f` on each row of `select` as it arrives.
async fn each_row<C: StreamTrait>(
    db: &C,
    select: &SelectStatement,
    mut f: impl FnMut(QueryResult) -> Result<(), DbErr>,
) -> Result<(), DbErr> {
    let mut rows = std::pin::pin!(db.stream(select).await?);
    while let Some(row) = rows.next().await {
        f(row?)?;
    }
    Ok(())
}

/// Whether a role exists.
pub(crate) async fn exists(db: &impl ConnectionTrait, name: &str) -> Result<bool, DbErr> {
    let select =
        Query::select().column(Roles::Name).from(Roles::Table).and_where(Expr::col(Roles::Name).eq(name)).to_owned();
    Ok(db.query_one(&select).await?.is_some())
}

/// Inserts a validated role. Parents must exist, so no cycle can form.
pub(crate) async fn create(db: &Db, role: &NewRole) -> Result<()> {
    let txn = db.begin().await?;
    bump_generation(&txn).await?;
    if exists(&txn, &role.name).await? {
        return Err(Error::new(ErrorCode::Conflict, format!("role {} already exists", role.name)));
    }
    if !role.inherits.is_empty() {
        let select = Query::select()
            .column(Roles::Name)
            .from(Roles::Table)
            .and_where(Expr::col(Roles::Name).is_in(role.inherits.iter().map(String::as_str)))
            .to_owned();
        let mut found = Vec::new();
        for row in txn.query_all(&select).await? {
            found.push(row.try_get::<String>("", "name")?);
        }
        if let Some(missing) = role.inherits.iter().find(|p| !found.contains(p)) {
            return Err(not_found(missing));
        }
    }

    let mut insert = Query::insert();
    insert.into_table(Roles::Table).columns([Roles::Name, Roles::Builtin, Roles::CreatedAt]);
    insert
        .values([role.name.as_str().into(), false.into(), OffsetDateTime::now_utc().into()])
        .map_err(Error::internal)?;
    txn.execute(&insert).await.map_err(|e| match e.sql_err() {
        // Only reachable if the generation row did not serialise us; still a duplicate.
        Some(SqlErr::UniqueConstraintViolation(_)) => Error::new(ErrorCode::Conflict, "role already exists"),
        _ => e.into(),
    })?;
    if !role.permissions.is_empty() {
        let mut insert = Query::insert();
        insert.into_table(RolePermissions::Table).columns([RolePermissions::Role, RolePermissions::Permission]);
        for permission in &role.permissions {
            insert.values([role.name.as_str().into(), permission.as_str().into()]).map_err(Error::internal)?;
        }
        txn.execute(&insert).await?;
    }
    if !role.inherits.is_empty() {
        let mut insert = Query::insert();
        insert.into_table(RoleInherits::Table).columns([RoleInherits::Role, RoleInherits::Parent]);
        for parent in &role.inherits {
            insert.values([role.name.as_str().into(), parent.as_str().into()]).map_err(Error::internal)?;
        }
        txn.execute(&insert).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Deletes a role, its assignments, its entries and every inheritance link to or from it, in
/// one transaction: roles that inherited it simply stop inheriting it. The foreign keys also
/// cascade, but deleting explicitly keeps this correct on a connection without them.
pub(crate) async fn delete(db: &Db, name: &str) -> Result<()> {
    let txn = db.begin().await?;
    bump_generation(&txn).await?;
    let select =
        Query::select().column(Roles::Builtin).from(Roles::Table).and_where(Expr::col(Roles::Name).eq(name)).to_owned();
    let Some(row) = txn.query_one(&select).await? else {
        return Err(not_found(name));
    };
    if row.try_get::<bool>("", "builtin")? {
        return Err(Error::new(ErrorCode::AccessDenied, format!("built-in role {name} cannot be deleted")));
    }
    let deletes = [
        Query::delete().from_table(UserRoles::Table).and_where(Expr::col(UserRoles::Role).eq(name)).to_owned(),
        Query::delete()
            .from_table(RoleInherits::Table)
            .cond_where(
                Cond::any().add(Expr::col(RoleInherits::Role).eq(name)).add(Expr::col(RoleInherits::Parent).eq(name)),
            )
            .to_owned(),
        Query::delete()
            .from_table(RolePermissions::Table)
            .and_where(Expr::col(RolePermissions::Role).eq(name))
            .to_owned(),
        Query::delete().from_table(Roles::Table).and_where(Expr::col(Roles::Name).eq(name)).to_owned(),
    ];
    for delete in &deletes {
        txn.execute(delete).await?;
    }
    txn.commit().await?;
    Ok(())
}
