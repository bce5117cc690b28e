use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum LoginFailures {
    Table,
    Key,
    Failures,
    LockedUntil,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LoginFailures::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(LoginFailures::Key).string().not_null().primary_key())
                    .col(ColumnDef::new(LoginFailures::Failures).big_integer().not_null())
                    .col(ColumnDef::new(LoginFailures::LockedUntil).big_integer().not_null())
                    .col(ColumnDef::new(LoginFailures::ExpiresAt).big_integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(LoginFailures::Table).to_owned()).await
    }
}
