//! User-role assignments: `user_roles`. Never cached, so a change is seen by the next request.
use super::roles::{exists, not_found};
use super::{GENERATION_ROW, RoleGeneration, UserRoles};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Order, Query};
use sea_orm::{ConnectionTrait, DbErr, SqlErr};
use time::OffsetDateTime;
use uuid::Uuid;
use warden_common::{Error, Result};

/// A user's direct roles (sorted) and the role generation, in one statement: this is the
/// only query on the permission-check path while the cached graph is current. The generation
/// is `None` when the user has no roles (there is then nothing to look up).
pub(crate) async fn direct_roles(
    db: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<(Vec<String>, Option<i64>), DbErr> {
    let generation = Query::select()
        .column(RoleGeneration::Generation)
        .from(RoleGeneration::Table)
        .and_where(Expr::col(RoleGeneration::Id).eq(GENERATION_ROW))
        .to_owned();
    let select = Query::select()
        .column(UserRoles::Role)
        .expr_as(Expr::SubQuery(None, Box::new(generation.into())), RoleGeneration::Generation)
        .from(UserRoles::Table)
        .and_where(Expr::col(UserRoles::UserId).eq(user_id))
        .order_by(UserRoles::Role, Order::Asc)
        .to_owned();
    let mut roles = Vec::new();
    let mut current = None;
    for row in db.query_all(&select).await? {
        roles.push(row.try_get("", "role")?);
        current = row.try_get::<Option<i64>>("", "generation")?;
    }
    Ok((roles, current))
}

/// Assigns a role; assigning it again changes nothing.
pub(crate) async fn assign(db: &impl ConnectionTrait, user_id: Uuid, role: &str) -> Result<()> {
    if !exists(db, role).await? {
        return Err(not_found(role));
    }
    let mut insert = Query::insert();
    insert
        .into_table(UserRoles::Table)
        .columns([UserRoles::UserId, UserRoles::Role, UserRoles::CreatedAt])
        .on_conflict(OnConflict::columns([UserRoles::UserId, UserRoles::Role]).do_nothing().to_owned());
    insert.values([user_id.into(), role.into(), OffsetDateTime::now_utc().into()]).map_err(Error::internal)?;
    match db.execute(&insert).await {
        Ok(_) => Ok(()),
        // The role was deleted between the check and the insert.
        Err(e) if matches!(e.sql_err(), Some(SqlErr::ForeignKeyConstraintViolation(_))) => Err(not_found(role)),
        Err(e) => Err(e.into()),
    }
}

/// Removes an assignment; removing an absent one changes nothing, but the role must exist.
pub(crate) async fn unassign(db: &impl ConnectionTrait, user_id: Uuid, role: &str) -> Result<()> {
    if !exists(db, role).await? {
        return Err(not_found(role));
    }
    let delete = Query::delete()
        .from_table(UserRoles::Table)
        .and_where(Expr::col(UserRoles::UserId).eq(user_id))
        .and_where(Expr::col(UserRoles::Role).eq(role))
        .to_owned();
    db.execute(&delete).await?;
    Ok(())
}
