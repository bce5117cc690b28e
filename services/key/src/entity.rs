//! The `api_keys` row. Only the key service reads or writes it.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) id: Uuid,
    pub(crate) owner_id: Uuid,
    pub(crate) name: String,
    /// JSON array of scopes.
    pub(crate) scopes: String,
    pub(crate) secret_hash: String,
    pub(crate) hash_alg: String,
    pub(crate) created_at: TimeDateTimeWithTimeZone,
    pub(crate) expires_at: Option<TimeDateTimeWithTimeZone>,
    pub(crate) last_used_at: Option<TimeDateTimeWithTimeZone>,
    pub(crate) revoked_at: Option<TimeDateTimeWithTimeZone>,
    pub(crate) rate_limit_per_minute: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
