//! The database handle shared by the writer thread and the read tasks. redb latches the first
//! I/O error and refuses every later write, so after a failed write the writer closes the file and
//! opens it again (see `failure`); this slot is where the new handle replaces the old one.

use std::sync::{Arc, PoisonError, RwLock};
use std::thread;
use std::time::Duration;

use redb::Database;

use crate::store::StoreError;

/// `None` only while the writer reopens the file.
pub(super) struct DbSlot(RwLock<Option<Arc<Database>>>);

impl DbSlot {
    pub(super) fn new(db: Database) -> Self {
        DbSlot(RwLock::new(Some(Arc::new(db))))
    }

    /// The current handle, to use for one transaction and drop: a clone held longer keeps the
    /// writer from reopening the file.
    ///
    /// # Errors
    /// [`StoreError::Reopening`] while the writer reopens the file.
    pub(super) fn get(&self) -> Result<Arc<Database>, StoreError> {
        let db = self.0.read().unwrap_or_else(PoisonError::into_inner);
        db.clone().ok_or(StoreError::Reopening)
    }

    /// Takes the handle out and returns once it is closed: redb refuses to open a file that a
    /// handle in this process still holds. Readers that already hold a clone are waited for; each
    /// holds it for one short read transaction.
    pub(super) fn close(&self) {
        let taken = self
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut db) = taken else {
            return;
        };
        loop {
            match Arc::try_unwrap(db) {
                Ok(db) => {
                    drop(db);
                    return;
                }
                Err(shared) => {
                    db = shared;
                    thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    /// Puts a newly opened handle in.
    pub(super) fn put(&self, db: Database) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(db));
    }
}
