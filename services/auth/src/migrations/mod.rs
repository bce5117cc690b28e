//! The auth service's tables.
use sea_orm_migration::MigrationTrait;

mod m20261125_000201_create_users;
mod m20261125_000202_create_sessions;
mod m20261125_000203_create_login_failures;
mod m20261125_000204_create_mfa;
mod m20261126_000205_index_session_ends;

pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(m20261125_000201_create_users::Migration),
        Box::new(m20261125_000202_create_sessions::Migration),
        Box::new(m20261125_000203_create_login_failures::Migration),
        Box::new(m20261125_000204_create_mfa::Migration),
        Box::new(m20261126_000205_index_session_ends::Migration),
    ]
}
