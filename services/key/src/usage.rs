//! `last_used_at` without a database write per request: validations record the time in
//! memory, and a background task writes what changed every few seconds (one transaction).
use crate::entity;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;
use warden_common::db::Db;

pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(3);

#[derive(Default)]
pub(crate) struct Usage {
    pending: Mutex<HashMap<Uuid, OffsetDateTime>>,
}

impl Usage {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, OffsetDateTime>> {
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn touch(&self, id: Uuid, at: OffsetDateTime) {
        let mut pending = self.lock();
        let slot = pending.entry(id).or_insert(at);
        *slot = (*slot).max(at);
    }

    /// A use this process saw but has not written yet.
    pub(crate) fn pending(&self, id: Uuid) -> Option<OffsetDateTime> {
        self.lock().get(&id).copied()
    }

    /// Writes pending times. Entries stay visible to [`Self::pending`] until written, and on
    /// failure they stay for the next round.
    pub(crate) async fn flush(&self, db: &Db) -> Result<usize, DbErr> {
        let snapshot: Vec<(Uuid, OffsetDateTime)> = self.lock().iter().map(|(id, at)| (*id, *at)).collect();
        if snapshot.is_empty() {
            return Ok(0);
        }
        let txn = db.begin().await?;
        for (id, at) in &snapshot {
            entity::Entity::update_many()
                .col_expr(entity::Column::LastUsedAt, Expr::value(*at))
                .filter(entity::Column::Id.eq(*id))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        let mut pending = self.lock();
        for (id, at) in &snapshot {
            // Keep entries that were used again while we wrote.
            if pending.get(id) == Some(at) {
                pending.remove(id);
            }
        }
        Ok(snapshot.len())
    }
}
