//! Schema of the RBAC service's own tables (numbers 0004xx are reserved for it). The binary
//! combines these with the other services' migrations; nothing else writes these tables.
use sea_orm_migration::MigrationTrait;

mod m20261125_000401_create_roles;
mod m20261125_000402_create_user_roles;
mod m20261125_000403_create_role_generation;
mod m20261125_000404_seed_admin_role;

/// The RBAC migrations, oldest first.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(m20261125_000401_create_roles::Migration),
        Box::new(m20261125_000402_create_user_roles::Migration),
        Box::new(m20261125_000403_create_role_generation::Migration),
        Box::new(m20261125_000404_seed_admin_role::Migration),
    ]
}
