//! The SQLite sink (`[[sinks]] kind = "sqlite"`): a `latest` table with one row per target, a
//! `results` table with every result (the history: RTT over time, outages), and an append-only
//! `events` table of confirmed state changes, in WAL mode, one transaction per batch (so a
//! killed node leaves a database that opens cleanly with every committed row), pruned by age.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};

use super::error::SinkError;
use super::writer::ResultWriter;
use crate::model::Record;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS latest (
    probe TEXT NOT NULL, target TEXT NOT NULL, node TEXT NOT NULL,
    ts TEXT NOT NULL, ts_ms INTEGER NOT NULL, ok INTEGER NOT NULL, rtt_ms REAL,
    error TEXT, detail TEXT, stage TEXT, exit_code INTEGER, epoch INTEGER NOT NULL,
    labels TEXT NOT NULL,
    PRIMARY KEY (probe, target)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL, ts_ms INTEGER NOT NULL, node TEXT NOT NULL,
    probe TEXT NOT NULL, target TEXT NOT NULL,
    from_state TEXT NOT NULL, to_state TEXT NOT NULL, epoch INTEGER NOT NULL,
    labels TEXT NOT NULL, vantages TEXT
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts_ms);
CREATE INDEX IF NOT EXISTS events_target ON events (probe, target, ts_ms);
CREATE TABLE IF NOT EXISTS results (
    ts_ms INTEGER NOT NULL, node TEXT NOT NULL, probe TEXT NOT NULL, target TEXT NOT NULL,
    ok INTEGER NOT NULL, rtt_ms REAL, duration_ms REAL NOT NULL, error TEXT, stage TEXT,
    exit_code INTEGER, epoch INTEGER NOT NULL,
    sent INTEGER, received INTEGER, loss REAL,
    rtt_min_ms REAL, rtt_max_ms REAL, rtt_stddev_ms REAL
);
CREATE INDEX IF NOT EXISTS results_target ON results (probe, target, ts_ms);
CREATE INDEX IF NOT EXISTS results_ts ON results (ts_ms);
";

/// Prune at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Writes records to a SQLite database.
#[derive(Debug)]
pub struct SqliteWriter {
    path: PathBuf,
    conn: Connection,
    retention: Option<Duration>,
    last_prune: Option<Instant>,
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl SqliteWriter {
    /// Opens (creating if needed) the database at `path`; rows older than `retention` are
    /// deleted as new ones come.
    pub fn open(path: &Path, retention: Option<Duration>) -> Result<Self, SinkError> {
        let err = |e: rusqlite::Error| SinkError::Open {
            path: path.to_path_buf(),
            error: std::io::Error::other(e),
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        // A database written by a version without `events.vantages` gains the column.
        let has_vantages: bool = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('events') WHERE name = 'vantages'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(err)?
            > 0;
        if !has_vantages {
            conn.execute_batch("ALTER TABLE events ADD COLUMN vantages TEXT")
                .map_err(err)?;
        }
        Ok(SqliteWriter {
            path: path.to_path_buf(),
            conn,
            retention,
            last_prune: None,
        })
    }

    fn prune(&mut self) -> rusqlite::Result<()> {
        let Some(retention) = self.retention else {
            return Ok(());
        };
        if self.last_prune.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
            return Ok(());
        }
        self.last_prune = Some(Instant::now());
        let cutoff = ms(SystemTime::now()) - retention.as_millis() as i64;
        self.conn
            .execute("DELETE FROM events WHERE ts_ms < ?1", [cutoff])?;
        self.conn
            .execute("DELETE FROM results WHERE ts_ms < ?1", [cutoff])?;
        self.conn
            .execute("DELETE FROM latest WHERE ts_ms < ?1", [cutoff])?;
        Ok(())
    }
}

impl ResultWriter for SqliteWriter {
    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    fn write_batch(&mut self, batch: &[Record]) -> std::io::Result<()> {
        let io = std::io::Error::other;
        let tx = self.conn.transaction().map_err(io)?;
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO latest (probe, target, node, ts, ts_ms, ok, rtt_ms, error, detail, stage, exit_code, epoch, labels)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                     ON CONFLICT (probe, target) DO UPDATE SET node = ?3, ts = ?4, ts_ms = ?5, ok = ?6,
                       rtt_ms = ?7, error = ?8, detail = ?9, stage = ?10, exit_code = ?11, epoch = ?12, labels = ?13",
                )
                .map_err(io)?;
            let mut history = tx
                .prepare_cached(
                    "INSERT INTO results (ts_ms, node, probe, target, ok, rtt_ms, duration_ms, error, stage, exit_code, epoch,
                       sent, received, loss, rtt_min_ms, rtt_max_ms, rtt_stddev_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                )
                .map_err(io)?;
            let mut event = tx
                .prepare_cached(
                    "INSERT INTO events (ts, ts_ms, node, probe, target, from_state, to_state, epoch, labels, vantages)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(io)?;
            for r in batch {
                match r {
                    Record::Result(r) => {
                        let l = r.line();
                        let stage = l
                            .ssh
                            .as_ref()
                            .and_then(|s| s.stage)
                            .and_then(|s| serde_json::to_value(s).ok());
                        upsert
                            .execute(params![
                                l.probe.as_str(),
                                l.target,
                                l.node,
                                l.ts,
                                ms(r.ts),
                                l.ok,
                                l.rtt_ms,
                                l.error,
                                l.detail,
                                stage.as_ref().and_then(|v| v.as_str()),
                                l.ssh.as_ref().and_then(|s| s.exit_code),
                                l.epoch as i64,
                                serde_json::to_string(&l.labels).unwrap_or_default(),
                            ])
                            .map_err(io)?;
                        history
                            .execute(params![
                                ms(r.ts),
                                l.node,
                                l.probe.as_str(),
                                l.target,
                                l.ok,
                                l.rtt_ms,
                                (r.elapsed.as_secs_f64() * 1e6).round() / 1e3,
                                l.error,
                                stage.as_ref().and_then(|v| v.as_str()),
                                l.ssh.as_ref().and_then(|s| s.exit_code),
                                l.epoch as i64,
                                l.echo.map(|e| e.sent),
                                l.echo.map(|e| e.received),
                                l.echo.map(|e| e.loss),
                                l.echo.and_then(|e| e.rtt_min_ms),
                                l.echo.and_then(|e| e.rtt_max_ms),
                                l.echo.and_then(|e| e.rtt_stddev_ms),
                            ])
                            .map_err(io)?;
                    }
                    Record::Event(e) => {
                        let l = e.line();
                        event
                            .execute(params![
                                l.ts,
                                ms(e.ts),
                                l.node,
                                l.probe.as_str(),
                                l.target,
                                l.from,
                                l.to.as_str(),
                                l.epoch as i64,
                                serde_json::to_string(l.labels).unwrap_or_default(),
                                (!l.vantages.is_empty())
                                    .then(|| serde_json::to_string(&l.vantages).ok())
                                    .flatten(),
                            ])
                            .map_err(io)?;
                    }
                }
            }
        }
        tx.commit().map_err(io)?;
        self.prune().map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use crate::probe::health::TargetState;
    use std::sync::Arc;

    fn target(id: &str) -> Arc<TargetSpec> {
        crate::testkit::target(id, Duration::from_secs(10), Duration::from_secs(1))
    }

    #[test]
    fn events_keep_their_vantages_and_an_older_database_gains_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        // A database as an earlier version made it: no events.vantages.
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL,
                 ts_ms INTEGER NOT NULL, node TEXT NOT NULL, probe TEXT NOT NULL,
                 target TEXT NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL,
                 epoch INTEGER NOT NULL, labels TEXT NOT NULL);",
            )
            .unwrap();
        let mut w = SqliteWriter::open(&path, None).unwrap();
        let n = |s: &str| NodeName::new(s).unwrap();
        let event = |vantages: Vec<(NodeName, TargetState)>| {
            Record::Event(StateEvent {
                ts: SystemTime::now(),
                node: n("n1"),
                target: target("127.0.0.1"),
                epoch: 1,
                from: Some(TargetState::Up),
                to: TargetState::Down,
                vantages,
            })
        };
        w.write_batch(&[
            event(vec![
                (n("n1"), TargetState::Down),
                (n("n2"), TargetState::Up),
            ]),
            event(Vec::new()),
        ])
        .unwrap();
        drop(w);
        let conn = Connection::open(&path).unwrap();
        let rows: Vec<Option<String>> = conn
            .prepare("SELECT vantages FROM events ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows, [Some(r#"{"n1":"down","n2":"up"}"#.to_string()), None]);
    }

    #[test]
    fn latest_is_one_row_per_target_and_events_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let mut w = SqliteWriter::open(&path, Some(Duration::from_secs(3600))).unwrap();
        let node = NodeName::new("n1").unwrap();
        let res = |id: &str, ok: bool| {
            Record::Result(ProbeResult {
                ts: SystemTime::now(),
                node: node.clone(),
                target: target(id),
                epoch: 1,
                outcome: if ok {
                    ProbeOutcome::Up {
                        rtt: Duration::from_millis(2),
                    }
                } else {
                    ProbeOutcome::Down {
                        reason: DownReason::Timeout,
                    }
                },
                elapsed: Duration::from_millis(1),
                echo: None,
                ssh: None,
            })
        };
        let ev = |id: &str| {
            Record::Event(StateEvent {
                ts: SystemTime::now(),
                node: node.clone(),
                target: target(id),
                epoch: 1,
                from: Some(TargetState::Up),
                to: TargetState::Down,
                vantages: Vec::new(),
            })
        };
        w.write_batch(&[
            res("127.0.0.1", true),
            res("127.0.0.2", true),
            res("127.0.0.1", false),
            ev("127.0.0.1"),
        ])
        .unwrap();
        w.write_batch(&[ev("127.0.0.2")]).unwrap();
        drop(w);
        let conn = Connection::open(&path).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM latest", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        let (ok, err): (bool, Option<String>) = conn
            .query_row(
                "SELECT ok, error FROM latest WHERE target = '127.0.0.1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((ok, err.as_deref()), (false, Some("timeout")));
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM events WHERE to_state = 'down'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 2);
        // The history keeps every result, in order, with the time spent.
        let mut q = conn
            .prepare("SELECT ok, rtt_ms, duration_ms, error FROM results WHERE target = '127.0.0.1' ORDER BY ts_ms, rowid")
            .unwrap();
        let rows: Vec<(bool, Option<f64>, f64, Option<String>)> = q
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            rows,
            [
                (true, Some(2.0), 1.0, None),
                (false, None, 1.0, Some("timeout".into()))
            ]
        );
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
