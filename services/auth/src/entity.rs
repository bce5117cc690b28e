//! The auth service's tables: users (always), and sessions and login failure counters
//! (only when the SQL database stands in for Redis). Times in the session tables are
//! unix seconds so that expiry comparisons are plain integer comparisons on every backend.

pub(crate) mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) id: Uuid,
        pub(crate) username: String,
        /// Lowercased username; unique, so "Alice" and "alice" are one account.
        #[sea_orm(unique)]
        pub(crate) username_key: String,
        pub(crate) password_hash: String,
        pub(crate) disabled: bool,
        pub(crate) created_at: TimeDateTimeWithTimeZone,
        pub(crate) updated_at: TimeDateTimeWithTimeZone,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {
        /// Read with the user at login, so the second-factor check costs no query of its own.
        #[sea_orm(has_one = "super::mfa_totp::Entity")]
        Totp,
    }

    impl Related<super::mfa_totp::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Totp.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod session {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sessions")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) id: Uuid,
        pub(crate) user_id: Uuid,
        pub(crate) refresh_hash: String,
        pub(crate) created_at: i64,
        pub(crate) expires_at: i64,
        pub(crate) refresh_expires_at: i64,
        pub(crate) last_refreshed_at: i64,
        pub(crate) previous_hash: Option<String>,
        pub(crate) rotated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod login_failure {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "login_failures")]
    pub(crate) struct Model {
        /// SHA-256 of the lowercased username.
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) key: String,
        pub(crate) failures: i64,
        pub(crate) locked_until: i64,
        pub(crate) expires_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod mfa_totp {
    use sea_orm::entity::prelude::*;

    /// A user's TOTP factor; `secret` is sealed at rest. Unconfirmed rows are enrolments in
    /// progress and do not affect login.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mfa_totp")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) user_id: Uuid,
        pub(crate) secret: String,
        pub(crate) confirmed: bool,
        /// The last time step whose code was accepted; a code is never accepted twice.
        pub(crate) last_used_step: i64,
        pub(crate) created_at: TimeDateTimeWithTimeZone,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {
        #[sea_orm(belongs_to = "super::user::Entity", from = "Column::UserId", to = "super::user::Column::Id")]
        User,
    }

    impl Related<super::user::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::User.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod recovery_code {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mfa_recovery_codes")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) id: Uuid,
        pub(crate) user_id: Uuid,
        /// SHA-256 of the code; the code itself is shown once.
        pub(crate) code_hash: String,
        pub(crate) used_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod mfa_challenge {
    use sea_orm::entity::prelude::*;

    /// Pending second login steps (SQL store only; Redis keeps them with a TTL).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mfa_challenges")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) token_hash: String,
        pub(crate) user_id: Uuid,
        pub(crate) expires_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
