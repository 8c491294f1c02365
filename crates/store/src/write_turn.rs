//! Turns for SQLite's one writer.
//!
//! A SQLite file has one writer at a time. A writer that finds the file locked sleeps in its busy handler (1, 2,
//! 5 ... 100 ms) and tries again, so it gets in only if it happens to wake in a gap. The loader commits its
//! staging rows in back-to-back transactions whose gaps last microseconds: during a long load, a heartbeat, a
//! progress update or a login's write would wait out the whole busy timeout and fail. Writers in this process
//! therefore first take a turn here; the lock is fair (it is handed to the longest waiter on unlock), so a write
//! waits for the transaction in progress and no longer. Another process on the same file still has only the busy
//! timeout, which is why the gateway and `conductor package load` should not both load into one file at once.

use std::sync::Arc;

use parking_lot::{FairMutex, FairMutexGuard};

/// A turn to write, shared by every connection to one database; no turns at all for a server that has its own
/// locking (PostgreSQL).
#[derive(Clone, Default)]
pub(crate) struct WriteTurns(Option<Arc<FairMutex<()>>>);

impl WriteTurns {
    /// Turns for one SQLite file.
    pub(crate) fn shared() -> Self {
        Self(Some(Arc::new(FairMutex::new(()))))
    }

    /// Waits for this writer's turn; the turn ends when the guard is dropped. Call it on a blocking thread.
    pub(crate) fn take(&self) -> Option<FairMutexGuard<'_, ()>> {
        self.0.as_ref().map(|turn| turn.lock())
    }
}

impl std::fmt::Debug for WriteTurns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WriteTurns").field(&self.0.is_some()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    #[expect(clippy::disallowed_methods, reason = "plain threads: no executor to block")]
    fn a_waiting_writer_gets_the_turn_before_its_holder_takes_it_again() {
        let turns = WriteTurns::shared();
        let written = Arc::new(AtomicBool::new(false));
        let held = turns.take();
        let waiter = {
            let (turns, written) = (turns.clone(), written.clone());
            std::thread::spawn(move || {
                let _turn = turns.take();
                written.store(true, Ordering::SeqCst);
            })
        };
        // Long enough for the waiter to be queued on the turn, however busy the machine.
        std::thread::sleep(Duration::from_millis(200));
        // Given back and asked for again at once, as the loader does between its transactions: the waiter's first.
        drop(held);
        let again = turns.take();
        assert!(
            written.load(Ordering::SeqCst),
            "the holder took the turn again before the writer waiting for it"
        );
        drop(again);
        waiter.join().unwrap();
    }

    #[test]
    fn postgres_has_no_turns() {
        assert!(WriteTurns::default().take().is_none());
    }
}
