//! SQLite helpers shared by the log store and the state machine: opening with the right
//! pragmas, running blocking work off the async workers, and mapping errors for openraft.

use std::path::Path;

use openraft::{ErrorSubject, ErrorVerb, StorageIOError};
use rusqlite::Connection;

use crate::types::{RaftId, StorageError};

/// Open (creating if needed) a database in WAL mode with full fsync on commit: a commit
/// that returned is on disk, which is what acknowledging a log append requires.
pub(crate) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    tune(&conn)?;
    Ok(conn)
}

/// Open a read-only connection to a database another connection writes.
pub(crate) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    tune(&conn)?;
    Ok(conn)
}

/// Settings of every connection: a statement cache big enough for all our statements, and
/// the query planner stability guarantee. Without it, the bundled SQLite (built with
/// STAT4) re-prepares a cached statement whenever a bound value in a range constraint
/// changes (every busy-time check): 6% of the leader's CPU under booking load.
fn tune(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// Prepared statements kept per connection: more than the state machine and the reads use.
const STATEMENT_CACHE: usize = 256;

/// Statements through the connection's prepared-statement cache. The state machine runs the
/// same few dozen statements for every entry; parsing them afresh each time was a fifth of
/// a follower's CPU under write load (docs/benchmarks.md).
pub(crate) trait Cached {
    /// `Connection::execute`, prepared once.
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;

    /// `Connection::query_row`, prepared once.
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// Run blocking database work on tokio's blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, StorageError>
where
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io_error(ErrorSubject::Store, ErrorVerb::Write, &e))?
}

/// Wrap any error as an openraft storage I/O error.
pub(crate) fn io_error<E: std::error::Error + 'static>(
    subject: ErrorSubject<RaftId>,
    verb: ErrorVerb,
    e: &E,
) -> StorageError {
    StorageIOError::new(subject, verb, e).into()
}

/// Storage error while reading the log.
pub(crate) fn read_logs<E: std::error::Error + 'static>(e: &E) -> StorageError {
    StorageIOError::read_logs(e).into()
}

/// Storage error while writing the log.
pub(crate) fn write_logs<E: std::error::Error + 'static>(e: &E) -> StorageError {
    StorageIOError::write_logs(e).into()
}

/// Storage error while reading the state machine.
pub(crate) fn read_sm<E: std::error::Error + 'static>(e: &E) -> StorageError {
    StorageIOError::read_state_machine(e).into()
}

/// Storage error while writing the state machine.
pub(crate) fn write_sm<E: std::error::Error + 'static>(e: &E) -> StorageError {
    StorageIOError::write_state_machine(e).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::config::DbConfig;

    #[test]
    fn connections_keep_their_query_plans_and_cache_statements() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        for conn in [open(&path).unwrap(), open_reader(&path).unwrap()] {
            assert!(conn.db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG).unwrap());
            conn.exec("CREATE TEMP TABLE t (v INTEGER)", []).unwrap();
            assert_eq!(conn.exec("INSERT INTO t VALUES (?1)", [7]).unwrap(), 1);
            assert_eq!(conn.row("SELECT v FROM t", [], |r| r.get::<_, i64>(0)).unwrap(), 7);
        }
    }
}
