//! The RBAC tables, reached only through sea-query statements so the same code runs on SQLite
//! and PostgreSQL.
//!
//! Every change to role definitions happens in a transaction whose first statement bumps the
//! `role_generation` row. That makes the bump atomic with the change (replicas' caches see it
//! exactly when the change commits), and taking that row's write lock first serialises role
//! changes on PostgreSQL and avoids read-to-write lock upgrades on SQLite.
pub(crate) mod assignments;
pub(crate) mod roles;

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr, DeriveIden};

#[derive(DeriveIden)]
pub(crate) enum Roles {
    Table,
    Name,
    Builtin,
    CreatedAt,
}

#[derive(DeriveIden)]
pub(crate) enum RolePermissions {
    Table,
    Role,
    Permission,
}

#[derive(DeriveIden)]
pub(crate) enum RoleInherits {
    Table,
    Role,
    Parent,
}

#[derive(DeriveIden)]
pub(crate) enum UserRoles {
    Table,
    UserId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
pub(crate) enum RoleGeneration {
    Table,
    Id,
    Generation,
}

/// The id of the single `role_generation` row.
pub(crate) const GENERATION_ROW: i32 = 1;

/// The current generation; `None` when the row is missing (migrations not run).
pub(crate) async fn generation(db: &impl ConnectionTrait) -> Result<Option<i64>, DbErr> {
    let select = Query::select()
        .column(RoleGeneration::Generation)
        .from(RoleGeneration::Table)
        .and_where(Expr::col(RoleGeneration::Id).eq(GENERATION_ROW))
        .to_owned();
    db.query_one(&select).await?.map(|row| row.try_get::<i64>("", "generation")).transpose()
}

/// Marks role definitions as changed; see the module comment for why it comes first.
async fn bump_generation(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    let update = Query::update()
        .table(RoleGeneration::Table)
        .value(RoleGeneration::Generation, Expr::col(RoleGeneration::Generation).add(1))
        .and_where(Expr::col(RoleGeneration::Id).eq(GENERATION_ROW))
        .to_owned();
    let result = db.execute(&update).await?;
    if result.rows_affected() != 1 {
        return Err(DbErr::RecordNotFound("role_generation row is missing".into()));
    }
    Ok(())
}
