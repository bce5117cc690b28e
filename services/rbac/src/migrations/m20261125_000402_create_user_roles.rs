//! Which user holds which role. `user_id` has no foreign key: the auth service owns users.
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string, timestamp_with_time_zone, uuid};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Roles {
    Table,
    Name,
}

#[derive(DeriveIden)]
enum UserRoles {
    Table,
    UserId,
    Role,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UserRoles::Table)
                    .col(uuid(UserRoles::UserId))
                    .col(string(UserRoles::Role))
                    .col(timestamp_with_time_zone(UserRoles::CreatedAt))
                    // (user_id, role) also serves the per-check lookup by user.
                    .primary_key(Index::create().col(UserRoles::UserId).col(UserRoles::Role))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_user_roles_role")
                            .from(UserRoles::Table, UserRoles::Role)
                            .to(Roles::Table, Roles::Name)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Deleting a role removes its assignments.
        manager
            .create_index(
                Index::create().name("idx_user_roles_role").table(UserRoles::Table).col(UserRoles::Role).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(UserRoles::Table).to_owned()).await
    }
}
