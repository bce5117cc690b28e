//! The token service's tables: only `signing_keys`.
use sea_orm_migration::MigrationTrait;

mod m20261125_000101_create_signing_keys;

pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(m20261125_000101_create_signing_keys::Migration)]
}
