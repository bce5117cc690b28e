//! The `signing_keys` table. `private_key` holds the base64 seed; `expires_at` is when the
//! last token the key signed has expired, after which it leaves the JWKS.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) kid: String,
    pub(crate) algorithm: String,
    pub(crate) private_key: String,
    pub(crate) public_key: String,
    pub(crate) created_at: TimeDateTimeWithTimeZone,
    pub(crate) retired_at: Option<TimeDateTimeWithTimeZone>,
    pub(crate) expires_at: Option<TimeDateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
