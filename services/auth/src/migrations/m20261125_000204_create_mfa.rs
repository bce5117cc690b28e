use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum MfaTotp {
    Table,
    UserId,
    Secret,
    Confirmed,
    LastUsedStep,
    CreatedAt,
}

#[derive(DeriveIden)]
enum MfaRecoveryCodes {
    Table,
    Id,
    UserId,
    CodeHash,
    UsedAt,
}

#[derive(DeriveIden)]
enum MfaChallenges {
    Table,
    TokenHash,
    UserId,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MfaTotp::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(MfaTotp::UserId).uuid().not_null().primary_key())
                    .col(ColumnDef::new(MfaTotp::Secret).string().not_null())
                    .col(ColumnDef::new(MfaTotp::Confirmed).boolean().not_null().default(false))
                    .col(ColumnDef::new(MfaTotp::LastUsedStep).big_integer().not_null().default(-1))
                    .col(ColumnDef::new(MfaTotp::CreatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MfaRecoveryCodes::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(MfaRecoveryCodes::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(MfaRecoveryCodes::UserId).uuid().not_null())
                    .col(ColumnDef::new(MfaRecoveryCodes::CodeHash).string().not_null())
                    .col(ColumnDef::new(MfaRecoveryCodes::UsedAt).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_mfa_recovery_codes_user")
                    .table(MfaRecoveryCodes::Table)
                    .col(MfaRecoveryCodes::UserId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MfaChallenges::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(MfaChallenges::TokenHash).string().not_null().primary_key())
                    .col(ColumnDef::new(MfaChallenges::UserId).uuid().not_null())
                    .col(ColumnDef::new(MfaChallenges::ExpiresAt).big_integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["mfa_challenges", "mfa_recovery_codes", "mfa_totp"] {
            manager.drop_table(Table::drop().table(Alias::new(table)).to_owned()).await?;
        }
        Ok(())
    }
}
