//! The key service's tables. It owns `api_keys`; other services ask it over gRPC.
//! Numbering 0003xx is reserved for this service.
use sea_orm_migration::MigrationTrait;

mod m20261125_000301_create_api_keys;

pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(m20261125_000301_create_api_keys::Migration)]
}
