//! Durable state behind one abstraction, [`Store`]: documents (resource records as JSON) kept
//! by kind and id, written in atomic batches that are on disk before the call returns. The
//! embedded backend is SQLite ([`sqlite::SqliteStore`]); a PostgreSQL backend implements the same
//! trait, and [`contract`] (feature `test-util`) is the suite every backend must pass.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
pub use trellis_core::target::BoxFuture;

pub mod group;
pub mod sqlite;

pub use group::GroupCommit;

#[cfg(feature = "test-util")]
pub mod contract;

/// One change in a batch: put `doc` under (kind, id), or delete it when `doc` is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub kind: String,
    pub id: String,
    pub doc: Option<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored document {kind}/{id} is not valid JSON: {source}")]
    Corrupt {
        kind: String,
        id: String,
        source: serde_json::Error,
    },
    #[error("unsupported store url {0:?} (expected sqlite://PATH or postgres://…)")]
    UnsupportedUrl(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("store task failed: {0}")]
    Task(String),
}

/// A document store with atomic, durable batches.
pub trait Store: Send + Sync {
    fn get<'a>(
        &'a self,
        kind: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>>;

    /// Every document of a kind, ordered by id.
    fn list<'a>(&'a self, kind: &'a str)
        -> BoxFuture<'a, Result<Vec<(String, Value)>, StoreError>>;

    /// At most `limit` documents of a kind whose ids come after `after` (all when `None`),
    /// ordered by id: for loading a kind with many documents without holding them all at once.
    fn list_page<'a>(
        &'a self,
        kind: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<(String, Value)>, StoreError>>;

    /// Applies every write or none, durably, and returns the store's new revision.
    fn commit(&self, writes: Vec<Write>) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// The revision of the last commit (0 for a new store).
    fn revision(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
}

impl Write {
    pub fn put(kind: &str, id: &str, doc: Value) -> Self {
        Self {
            kind: kind.into(),
            id: id.into(),
            doc: Some(doc),
        }
    }

    pub fn delete(kind: &str, id: &str) -> Self {
        Self {
            kind: kind.into(),
            id: id.into(),
            doc: None,
        }
    }
}

/// Opens the store named by `--store`; with no URL, the embedded SQLite file in `data_dir`.
pub fn open(url: Option<&str>, data_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    match url {
        None | Some("") => {
            std::fs::create_dir_all(data_dir)?;
            Ok(Arc::new(sqlite::SqliteStore::open(
                &data_dir.join("trellis.db"),
            )?))
        }
        Some(u) if u.starts_with("sqlite://") => {
            let path = Path::new(&u["sqlite://".len()..]);
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            Ok(Arc::new(sqlite::SqliteStore::open(path)?))
        }
        Some(u) => Err(StoreError::UnsupportedUrl(u.to_string())),
    }
}
