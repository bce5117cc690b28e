//! Roles, their entries (grants and `!` denies) and their parents.
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{boolean, string, timestamp_with_time_zone};

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

#[derive(DeriveIden)]
enum RoleInherits {
    Table,
    Role,
    Parent,
}

/// A link to `roles.name` that disappears with the role.
fn role_fk(name: &str, table: impl IntoIden, column: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, column)
        .to(Roles::Table, Roles::Name)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Roles::Table)
                    .col(string(Roles::Name).primary_key())
                    .col(boolean(Roles::Builtin).default(false))
                    .col(timestamp_with_time_zone(Roles::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RolePermissions::Table)
                    .col(string(RolePermissions::Role))
                    .col(string(RolePermissions::Permission))
                    .primary_key(Index::create().col(RolePermissions::Role).col(RolePermissions::Permission))
                    .foreign_key(&mut role_fk(
                        "fk_role_permissions_role",
                        RolePermissions::Table,
                        RolePermissions::Role,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RoleInherits::Table)
                    .col(string(RoleInherits::Role))
                    .col(string(RoleInherits::Parent))
                    .primary_key(Index::create().col(RoleInherits::Role).col(RoleInherits::Parent))
                    .foreign_key(&mut role_fk("fk_role_inherits_role", RoleInherits::Table, RoleInherits::Role))
                    .foreign_key(&mut role_fk("fk_role_inherits_parent", RoleInherits::Table, RoleInherits::Parent))
                    .to_owned(),
            )
            .await?;
        // Deleting a role looks up the roles that inherit it.
        manager
            .create_index(
                Index::create()
                    .name("idx_role_inherits_parent")
                    .table(RoleInherits::Table)
                    .col(RoleInherits::Parent)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [RoleInherits::Table.into_iden(), RolePermissions::Table.into_iden(), Roles::Table.into_iden()] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
