use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    Algorithm,
    PrivateKey,
    PublicKey,
    CreatedAt,
    RetiredAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(SigningKeys::Kid).string().not_null().primary_key())
                    .col(ColumnDef::new(SigningKeys::Algorithm).string().not_null())
                    .col(ColumnDef::new(SigningKeys::PrivateKey).string().not_null())
                    .col(ColumnDef::new(SigningKeys::PublicKey).string().not_null())
                    .col(ColumnDef::new(SigningKeys::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(SigningKeys::RetiredAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(SigningKeys::ExpiresAt).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(SigningKeys::Table).to_owned()).await
    }
}
