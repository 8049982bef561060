//! Settings shared by the SQLite files the server keeps: users, audit and revocations.

use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode};

/// How long a call waits for a lock held by another process, such as the CLI adding a user
/// while the server runs, or a second replica starting on the same file.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Sets the busy timeout and switches the file to write-ahead logging.
///
/// Switching to WAL takes an exclusive lock, and SQLite reports "database is locked" at once,
/// without calling its busy handler, when another process switches at the same moment, as two
/// processes opening a new file together do. The switch is retried until [`BUSY_TIMEOUT`].
pub(crate) fn use_wal(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        let mode: rusqlite::Result<String> =
            connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0));
        match mode {
            Ok(_) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(error, _))
                if error.code == ErrorCode::DatabaseBusy && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => return Err(error),
        }
    }
}
