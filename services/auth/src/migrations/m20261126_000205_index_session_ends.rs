//! Indexes on both end times of a session, so the embedded store's sweep (`expires_at <= now
//! OR refresh_expires_at <= now`) reads the ended rows instead of scanning every session
//! (0.1 s at a million sessions, holding SQLite's write lock meanwhile).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    ExpiresAt,
    RefreshExpiresAt,
}

const INDEXES: [(&str, Sessions); 2] =
    [("idx_sessions_expires_at", Sessions::ExpiresAt), ("idx_sessions_refresh_expires_at", Sessions::RefreshExpiresAt)];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, column) in INDEXES {
            let index = Index::create().name(name).table(Sessions::Table).col(column).if_not_exists().to_owned();
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, _) in INDEXES {
            manager.drop_index(Index::drop().name(name).table(Sessions::Table).to_owned()).await?;
        }
        Ok(())
    }
}
