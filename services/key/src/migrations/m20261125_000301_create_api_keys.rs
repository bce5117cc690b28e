//! `api_keys`: one row per key, holding only a hash of the secret.
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    integer, pk_uuid, string_len, text, timestamp_with_time_zone, timestamp_with_time_zone_null, uuid,
};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    OwnerId,
    Name,
    Scopes,
    SecretHash,
    HashAlg,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
    RevokedAt,
    RateLimitPerMinute,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .if_not_exists()
                    .col(pk_uuid(ApiKeys::Id))
                    .col(uuid(ApiKeys::OwnerId))
                    .col(string_len(ApiKeys::Name, 100))
                    // A JSON array of permission strings.
                    .col(text(ApiKeys::Scopes))
                    // Hex SHA-256 or HMAC-SHA-256 of the whole key; never the key itself.
                    .col(string_len(ApiKeys::SecretHash, 64))
                    .col(string_len(ApiKeys::HashAlg, 16))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                    .col(integer(ApiKeys::RateLimitPerMinute).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_api_keys_owner_id")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::OwnerId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ApiKeys::Table).if_exists().to_owned()).await
    }
}
