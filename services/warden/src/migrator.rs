//! Every service's migrations, combined. Each service owns its tables; one database (or
//! one per service, if operators prefer) holds them.
use sea_orm_migration::{MigrationTrait, MigratorTrait};

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = warden_token::migrations();
        all.extend(warden_auth::migrations());
        all.extend(warden_key::migrations::migrations());
        all.extend(warden_rbac::migrations());
        all
    }
}
