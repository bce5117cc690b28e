//! One row counting changes to role definitions. Every replica caches the role graph and
//! compares this counter (read with each user's assignments) to know when to reload it.
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, integer};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum RoleGeneration {
    Table,
    Id,
    Generation,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RoleGeneration::Table)
                    .col(integer(RoleGeneration::Id).primary_key())
                    .col(big_integer(RoleGeneration::Generation))
                    .to_owned(),
            )
            .await?;
        let mut insert = Query::insert();
        insert
            .into_table(RoleGeneration::Table)
            .columns([RoleGeneration::Id, RoleGeneration::Generation])
            .values([1.into(), 0i64.into()])
            .map_err(|e| DbErr::Migration(e.to_string()))?;
        manager.execute(insert).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(RoleGeneration::Table).to_owned()).await
    }
}
