//! Feeding the warehouse from the CSV on two threads, so both cores work: one reads, types and splits the rows
//! (keeping each dimension's distinct rows), the warehouse's own thread writes the fact rows as they come.
//! Batches pass between them in order through a channel two deep and come back empty to be refilled, so
//! memory stays a few batches whatever the file's size, and a row's error still names its row.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use super::{LoadError, Shutdown};
use crate::star::{FactError, MAX_DISTINCT, StarBuilder};
use crate::table::TableReader;
use crate::values::Cell;
use crate::warehouse::{RowSink, StagingFeed, WarehouseError};

/// Rows per batch: enough that passing a batch costs nothing next to filling it, few enough to stay small.
const BATCH_ROWS: usize = 1024;
/// Full batches waiting to be written, at most.
const BATCHES_IN_FLIGHT: usize = 2;

/// Progress shared between the streaming threads and the task that reports it.
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) rows: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) streaming: AtomicBool,
    /// Every row is in: `rows` is the total.
    pub(super) staged: AtomicBool,
    pub(super) stop: AtomicBool,
}

/// Feeds the warehouse from the CSV, counting rows and stopping when asked.
pub(super) struct Feed {
    pub(super) table: TableReader,
    pub(super) builder: StarBuilder,
    /// The dimension tables' names, for messages.
    pub(super) tables: Vec<String>,
    pub(super) shared: Arc<Shared>,
    pub(super) stopping: Shutdown,
    pub(super) error: Option<LoadError>,
}

/// Fact rows in order; `rows[..len]` hold this batch's, the rest are buffers kept for the next fill.
struct Batch {
    rows: Vec<Vec<Cell>>,
    len: usize,
}

/// The reading side: the CSV, the dimensions seen so far, and what stops it.
struct Reader<'a> {
    table: &'a mut TableReader,
    builder: &'a mut StarBuilder,
    tables: &'a [String],
    shared: &'a Shared,
    stopping: &'a Shutdown,
}

impl Reader<'_> {
    /// Fills batches until the CSV ends (`Ok`), a row fails or the load is stopped (`Err`), or the writer has
    /// gone (`Ok`: the writer knows why).
    fn run(&mut self, full: SyncSender<Batch>, empty: Receiver<Batch>) -> Result<(), LoadError> {
        let mut fact: Vec<Cell> = Vec::new();
        loop {
            let mut batch = empty.try_recv().unwrap_or_else(|_| Batch {
                rows: Vec::with_capacity(BATCH_ROWS),
                len: 0,
            });
            batch.len = 0;
            let mut ended = false;
            while batch.len < BATCH_ROWS {
                if self.shared.stop.load(Ordering::Relaxed) {
                    return Err(LoadError::JobEnded);
                }
                if self.stopping.is_set() {
                    return Err(LoadError::Interrupted);
                }
                match self.builder.read_fact(self.table, &mut fact) {
                    Ok(true) => {}
                    Ok(false) => {
                        ended = true;
                        break;
                    }
                    Err(FactError::Table(error)) => return Err(error.into()),
                    Err(FactError::TooMany(index)) => {
                        return Err(LoadError::Invalid(format!(
                            "row {}: the dimension in table {} has more than {MAX_DISTINCT} distinct rows; is a \
                             per-row value (an id) mapped to a dimension instead of left out?",
                            self.table.rows_read(),
                            self.tables[index],
                        )));
                    }
                }
                // The row moves into the batch; its old buffers come back to be split into next time.
                match batch.rows.get_mut(batch.len) {
                    Some(slot) => std::mem::swap(slot, &mut fact),
                    None => batch.rows.push(std::mem::take(&mut fact)),
                }
                batch.len += 1;
                // Counted as read, not as written: a slow source's rows show while their batch fills, and the
                // writer is never more than a few batches behind.
                self.shared.rows.fetch_add(1, Ordering::Relaxed);
            }
            if batch.len > 0 && full.send(batch).is_err() {
                return Ok(());
            }
            if ended {
                return Ok(());
            }
        }
    }
}

impl StagingFeed for Feed {
    fn facts(&mut self, sink: &mut dyn RowSink) -> Result<(), WarehouseError> {
        self.shared.streaming.store(true, Ordering::Relaxed);
        let (full_sender, full) = sync_channel::<Batch>(BATCHES_IN_FLIGHT);
        let (empty_sender, empty) = sync_channel::<Batch>(BATCHES_IN_FLIGHT + 2);
        let mut reader = Reader {
            table: &mut self.table,
            builder: &mut self.builder,
            tables: &self.tables,
            shared: &self.shared,
            stopping: &self.stopping,
        };
        let (read, written) = std::thread::scope(|scope| {
            let reading = scope.spawn(move || reader.run(full_sender, empty));
            let mut written = Ok(());
            while let Ok(batch) = full.recv() {
                written = batch.rows[..batch.len].iter().try_for_each(|row| sink.row(row));
                if written.is_err() {
                    break;
                }
                // The reader may have finished; a batch nobody refills is simply dropped.
                let _ = empty_sender.try_send(batch);
            }
            // Dropping the receiver tells a reader still filling that nobody writes any more.
            drop(full);
            let read = reading
                .join()
                .unwrap_or_else(|_| Err(LoadError::Database("the CSV reader panicked".into())));
            (read, written)
        });
        match (read, written) {
            (Err(error), _) => {
                self.error = Some(error);
                Err(WarehouseError::Stopped)
            }
            (Ok(()), written) => written,
        }
    }

    fn dimension(&mut self, index: usize, sink: &mut dyn RowSink) -> Result<(), WarehouseError> {
        for row in self.builder.dimension_rows(index) {
            sink.row(&row)?;
        }
        Ok(())
    }
}
