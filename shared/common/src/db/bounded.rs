//! Database handles whose every call ends. A PostgreSQL that stops answering (a hung server,
//! a network path that drops packets without resets) must cost a request a bounded wait and a
//! 503, never the request's whole budget. sqlx bounds only the wait for a pooled connection;
//! once a statement is on the wire it waits for the answer as long as TCP lets it. Here every
//! statement, transaction step and streamed row of a PostgreSQL handle gets at most
//! [`ANSWER_TIMEOUT`]. That is what lets the pool skip its ping before each use (one round
//! trip per query, see `connect_with`): a hot connection to a hung server fails here instead.
//!
//! SQLite runs in-process: there is no connection to lose, and a writer waiting for the lock
//! is bounded by SQLite's own busy timeout, so SQLite handles are not bounded again.
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult, IsolationLevel,
    QueryResult, RuntimeErr, Statement, StreamTrait, TransactionTrait,
};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;

/// Longest wait for the answer to one database call on PostgreSQL, the wait for a pooled
/// connection included (that wait alone is also bounded by [`super::POOL_TIMEOUT`]).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection (a pool, or one transaction) whose calls are bounded by `limit`, if any.
#[derive(Clone, Debug)]
pub struct Bounded<C> {
    conn: C,
    limit: Option<Duration>,
}

/// The pooled database every service uses.
pub type Db = Bounded<DatabaseConnection>;

/// A transaction begun on a [`Db`]; dropped without `commit`, it rolls back.
pub type Tx = Bounded<DatabaseTransaction>;

impl<C: ConnectionTrait> Bounded<C> {
    /// The backend; inherent, as on sea-orm's own handles, so that callers with both
    /// `ConnectionTrait` and `StreamTrait` in scope need not say which.
    pub fn get_database_backend(&self) -> DbBackend {
        ConnectionTrait::get_database_backend(&self.conn)
    }
}

impl Db {
    /// Wraps a pool; PostgreSQL pools are bounded by [`ANSWER_TIMEOUT`], SQLite ones are not.
    pub fn new(conn: DatabaseConnection) -> Db {
        let limit = (ConnectionTrait::get_database_backend(&conn) == DbBackend::Postgres).then_some(ANSWER_TIMEOUT);
        Bounded { conn, limit }
    }

    /// The pool itself, for work that must not be cut short (migrations) or that owns it.
    pub fn unbounded(&self) -> &DatabaseConnection {
        &self.conn
    }

    pub async fn begin(&self) -> Result<Tx, DbErr> {
        self.begin_with_config(None, None).await
    }

    pub async fn begin_with_config(
        &self,
        isolation: Option<IsolationLevel>,
        access: Option<AccessMode>,
    ) -> Result<Tx, DbErr> {
        let conn = within(self.limit, self.conn.begin_with_config(isolation, access)).await?;
        Ok(Bounded { conn, limit: self.limit })
    }

    pub async fn close(self) -> Result<(), DbErr> {
        self.conn.close().await
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), DbErr> {
        within(self.limit, self.conn.commit()).await
    }

    pub async fn rollback(self) -> Result<(), DbErr> {
        within(self.limit, self.conn.rollback()).await
    }
}

/// Runs `call`, failing it once `limit` has passed without an answer.
async fn within<T>(limit: Option<Duration>, call: impl Future<Output = Result<T, DbErr>>) -> Result<T, DbErr> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, call).await.unwrap_or_else(|_| Err(no_answer(limit))),
        None => call.await,
    }
}

fn no_answer(limit: Duration) -> DbErr {
    DbErr::Conn(RuntimeErr::Internal(format!("the database did not answer within {limit:?}")))
}

#[async_trait::async_trait]
impl<C: ConnectionTrait + Send + Sync> ConnectionTrait for Bounded<C> {
    fn get_database_backend(&self) -> DbBackend {
        ConnectionTrait::get_database_backend(&self.conn)
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        within(self.limit, self.conn.execute_raw(stmt)).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        within(self.limit, self.conn.execute_unprepared(sql)).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        within(self.limit, self.conn.query_one_raw(stmt)).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        within(self.limit, self.conn.query_all_raw(stmt)).await
    }

    fn support_returning(&self) -> bool {
        self.conn.support_returning()
    }
}

impl<C: StreamTrait + Send + Sync> StreamTrait for Bounded<C> {
    type Stream<'a>
        = Rows<RowStream<'a>>
    where
        C: 'a;

    fn get_database_backend(&self) -> DbBackend {
        StreamTrait::get_database_backend(&self.conn)
    }

    fn stream_raw<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<Self::Stream<'a>, DbErr>> + 'a + Send>> {
        Box::pin(async move {
            let rows = within(self.limit, self.conn.stream_raw(stmt)).await?;
            let rows: RowStream<'a> = Box::pin(rows);
            Ok(Rows::new(rows, self.limit))
        })
    }
}

/// The rows of one streamed statement.
pub type RowStream<'a> = Pin<Box<dyn Stream<Item = Result<QueryResult, DbErr>> + Send + 'a>>;

/// Streamed rows, each of which must arrive within the limit of the one before it: a long
/// result streams for as long as it takes, a stalled one ends with an error (and then ends).
pub struct Rows<S> {
    rows: Option<S>,
    wait: Option<(Duration, Pin<Box<Sleep>>)>,
}

impl<S> Rows<S> {
    fn new(rows: S, limit: Option<Duration>) -> Self {
        Rows { rows: Some(rows), wait: limit.map(|limit| (limit, Box::pin(tokio::time::sleep(limit)))) }
    }
}

impl<T, S: Stream<Item = Result<T, DbErr>> + Unpin> Stream for Rows<S> {
    type Item = Result<T, DbErr>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(rows) = &mut this.rows else { return Poll::Ready(None) };
        if let Poll::Ready(row) = Pin::new(rows).poll_next(cx) {
            if let Some((limit, sleep)) = &mut this.wait {
                sleep.as_mut().reset(Instant::now() + *limit);
            }
            return Poll::Ready(row);
        }
        let Some((limit, sleep)) = &mut this.wait else { return Poll::Pending };
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let error = no_answer(*limit);
        (this.rows, this.wait) = (None, None);
        Poll::Ready(Some(Err(error)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{db, testing};
    use std::time::Instant as Clock;
    use tokio_stream::StreamExt;

    const SHORT: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn a_call_without_an_answer_fails_at_the_limit() {
        let never = std::future::pending::<Result<(), DbErr>>();
        let error = within(Some(SHORT), never).await.unwrap_err();
        assert!(error.to_string().contains("did not answer within 50ms"), "{error}");
        assert_eq!(within(None, async { Ok(7) }).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn streamed_rows_may_take_long_but_not_stall() {
        // Rows 10 ms apart: each comes within the limit, the whole takes several limits.
        let slow = Box::pin(tokio_stream::iter(0..20).throttle(Duration::from_millis(10)).map(Ok::<_, DbErr>));
        let rows: Vec<u32> = Rows::new(slow, Some(SHORT)).map(Result::unwrap).collect().await;
        assert_eq!(rows, (0..20).collect::<Vec<_>>());

        // Two rows, then nothing: the third wait is an error, then the stream ends.
        let stalled = Box::pin(tokio_stream::iter([Ok(1), Ok(2)]).chain(tokio_stream::pending()));
        let mut rows = Rows::new(stalled, Some(SHORT));
        assert_eq!(rows.next().await.unwrap().unwrap(), 1);
        assert_eq!(rows.next().await.unwrap().unwrap(), 2);
        assert!(rows.next().await.unwrap().unwrap_err().to_string().contains("did not answer"));
        assert!(rows.next().await.is_none());
    }

    #[tokio::test]
    async fn sqlite_is_not_bounded_postgres_is() {
        assert_eq!(testing::sqlite().await.limit, None);
        let Some(url) = testing::postgres_url("bounded::sqlite_is_not_bounded_postgres_is").await else { return };
        assert_eq!(db::connect(&url).await.unwrap().limit, Some(ANSWER_TIMEOUT));
    }

    /// A statement PostgreSQL does not answer in time (a sleep stands in for a hung server)
    /// fails at the limit, and the pool goes on serving: the abandoned connection rejoins it
    /// once the server is done, and a fresh one serves meanwhile.
    #[tokio::test]
    async fn a_postgres_statement_past_the_limit_fails_and_the_pool_serves_on() {
        let Some(url) = testing::postgres_url("bounded::a_postgres_statement_past_the_limit").await else { return };
        let pool = db::connect(&url).await.unwrap();
        let short = Bounded { conn: pool.unbounded().clone(), limit: Some(Duration::from_millis(300)) };
        let started = Clock::now();
        let error = short.execute_unprepared("SELECT pg_sleep(3)").await.unwrap_err();
        assert!(error.to_string().contains("did not answer"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(3), "the call waited for the answer");
        assert!(db::ping(&pool).await);

        // A transaction's statements are bounded too.
        let txn = short.begin().await.unwrap();
        txn.execute_unprepared("SELECT 1").await.unwrap();
        let error = txn.execute_unprepared("SELECT pg_sleep(3)").await.unwrap_err();
        assert!(error.to_string().contains("did not answer"), "{error}");
        drop(txn);
        assert!(db::ping(&pool).await);
    }
}
