//! The built-in `admin` role, holding `*`. It is marked builtin so it cannot be deleted.
use sea_orm_migration::prelude::*;
use time::OffsetDateTime;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Roles {
    Table,
    Name,
    Builtin,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RolePermissions {
    Table,
    Role,
    Permission,
}

const ADMIN: &str = "admin";

fn statement_error(e: sea_query::error::Error) -> DbErr {
    DbErr::Migration(e.to_string())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut role = Query::insert();
        role.into_table(Roles::Table)
            .columns([Roles::Name, Roles::Builtin, Roles::CreatedAt])
            .values([ADMIN.into(), true.into(), OffsetDateTime::now_utc().into()])
            .map_err(statement_error)?;
        manager.execute(role).await?;
        let mut permission = Query::insert();
        permission
            .into_table(RolePermissions::Table)
            .columns([RolePermissions::Role, RolePermissions::Permission])
            .values([ADMIN.into(), "*".into()])
            .map_err(statement_error)?;
        manager.execute(permission).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let delete = |table: DynIden, column: DynIden| {
            Query::delete().from_table(table).and_where(Expr::col(column).eq(ADMIN)).to_owned()
        };
        manager.execute(delete(RolePermissions::Table.into_iden(), RolePermissions::Role.into_iden())).await?;
        manager.execute(delete(Roles::Table.into_iden(), Roles::Name.into_iden())).await
    }
}
