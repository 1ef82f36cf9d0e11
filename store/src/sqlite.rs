//! The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`, so a commit is
//! fsynced before it is acknowledged. Calls run on the blocking pool; one connection serialises
//! writers, which SQLite would do anyway.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::{BoxFuture, Store, StoreError, Write};

/// Schema versions, applied in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &["CREATE TABLE docs (
        kind TEXT NOT NULL,
        id   TEXT NOT NULL,
        doc  TEXT NOT NULL,
        rev  INTEGER NOT NULL,
        PRIMARY KEY (kind, id)
    ) WITHOUT ROWID;
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO meta (key, value) VALUES ('revision', 0);"];

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

// === impl SqliteStore ===

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

fn parse(kind: &str, id: &str, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Corrupt {
        kind: kind.into(),
        id: id.into(),
        source,
    })
}

impl Store for SqliteStore {
    fn get<'a>(
        &'a self,
        kind: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        let (k, i) = (kind.to_string(), id.to_string());
        Box::pin(self.run(move |c| {
            let text: Option<String> = c
                .query_row(
                    "SELECT doc FROM docs WHERE kind = ?1 AND id = ?2",
                    params![k, i],
                    |r| r.get(0),
                )
                .optional()?;
            text.map(|t| parse(&k, &i, &t)).transpose()
        }))
    }

    fn list<'a>(
        &'a self,
        kind: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, Value)>, StoreError>> {
        let k = kind.to_string();
        Box::pin(self.run(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT id, doc FROM docs WHERE kind = ?1 ORDER BY id")?;
            let rows = stmt.query_map(params![k], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, text) = row?;
                let doc = parse(&k, &id, &text)?;
                out.push((id, doc));
            }
            Ok(out)
        }))
    }

    fn list_page<'a>(
        &'a self,
        kind: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<(String, Value)>, StoreError>> {
        let (k, after) = (kind.to_string(), after.unwrap_or("").to_string());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Box::pin(self.run(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, doc FROM docs WHERE kind = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![k, after, limit], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, text) = row?;
                let doc = parse(&k, &id, &text)?;
                out.push((id, doc));
            }
            Ok(out)
        }))
    }

    fn commit(&self, writes: Vec<Write>) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.run(move |c| {
            let tx = c.transaction()?;
            // Cached statements: a group commit writes thousands of documents, and parsing
            // the SQL for each was a tenth of the time of a busy PutEvents.
            let rev: i64 = tx
                .prepare_cached(
                    "UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value",
                )?
                .query_row([], |r| r.get(0))?;
            {
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO docs (kind, id, doc, rev) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (kind, id) DO UPDATE SET doc = excluded.doc, rev = excluded.rev",
                )?;
                let mut delete =
                    tx.prepare_cached("DELETE FROM docs WHERE kind = ?1 AND id = ?2")?;
                for w in &writes {
                    match &w.doc {
                        Some(doc) => {
                            upsert.execute(params![w.kind, w.id, doc.to_string(), rev])?;
                        }
                        None => {
                            delete.execute(params![w.kind, w.id])?;
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(rev as u64)
        }))
    }

    fn revision(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.run(|c| {
            let rev: i64 =
                c.query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
                    r.get(0)
                })?;
            Ok(rev as u64)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_passes_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path).unwrap();
        crate::contract::run(&store).await;
        drop(store);
        // Reopening finds every committed document again.
        let store = SqliteStore::open(&path).unwrap();
        crate::contract::after_reopen(&store).await;
    }
}
