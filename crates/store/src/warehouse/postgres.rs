//! PostgreSQL: rows streamed with `COPY ... FROM STDIN` into the staging tables, numbered as they go, in one
//! transaction; then swapped in.

use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use conductor_loader::star::{FACT_KEY, StarLayout, TableLayout, staging_name};
use conductor_loader::warehouse::quote_identifier;
use conductor_loader::{Cell, RowSink, StagingFeed, Warehouse, WarehouseError};

use super::copy_binary::{BinaryTuples, HEADER, TRAILER};
use super::{
    Tables, column_list, create_staging_sql, database, drop_sql, is_terminal, package_tables, script,
};

/// PostgreSQL through COPY.
#[derive(Clone)]
pub struct PostgresWarehouse {
    url: String,
    /// The connection the last successful staging ended on, with its fact table: the swap that follows takes it
    /// instead of starting another backend (4-5 ms of a load, a fresh backend's first catalog lookups included).
    /// One at most, idle until a swap takes it or the next staging replaces it.
    staged: Arc<Mutex<Option<(String, postgres::Client)>>>,
}

impl std::fmt::Debug for PostgresWarehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresWarehouse").finish_non_exhaustive()
    }
}

impl PostgresWarehouse {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            staged: Arc::default(),
        }
    }

    /// The staging connection of `fact_table`'s load when its backend still answers, else a new one: nothing was
    /// sent on it since its commit, so starting over on another is safe.
    fn connect_after_staging(&self, fact_table: &str) -> Result<postgres::Client, WarehouseError> {
        // Another load's connection is left for that load's swap.
        let kept = self.staged.lock().ok().and_then(|mut slot| {
            slot.take_if(|(table, _)| table == fact_table)
                .map(|(_, client)| client)
        });
        match kept {
            Some(mut client) => match client.is_valid(STAGED_CHECK_TIMEOUT) {
                Ok(()) => Ok(client),
                Err(_) => self.connect(),
            },
            None => self.connect(),
        }
    }

    fn connect(&self) -> Result<postgres::Client, WarehouseError> {
        postgres::Client::connect(&self.url, postgres::NoTls)
            .map_err(|e| WarehouseError::Unavailable(e.to_string()))
    }

    fn tables(
        client: &mut impl postgres::GenericClient,
        prefix: &str,
    ) -> Result<Vec<String>, WarehouseError> {
        let rows = client
            .query(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() \
                 AND left(tablename, length($1)) = $1 ORDER BY tablename",
                &[&prefix],
            )
            .map_err(pg)?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }

    /// Streams `fill`'s rows into `table`'s staging table (a dimension's: they are small).
    fn copy(
        client: &mut postgres::Client,
        table: &TableLayout,
        fill: &mut dyn FnMut(&mut dyn RowSink) -> Result<(), WarehouseError>,
    ) -> Result<(), WarehouseError> {
        let statement = format!(
            "COPY {} ({}) FROM STDIN",
            quote_identifier(&staging_name(&table.name)),
            column_list(table)
        );
        let writer = client.copy_in(&statement).map_err(pg)?;
        let mut sink = CopySink {
            out: BufWriter::with_capacity(256 * 1024, writer),
            line: Vec::with_capacity(1024),
            digits: itoa::Buffer::new(),
        };
        // On an error the writer is dropped unfinished, which aborts the COPY.
        fill(&mut sink)?;
        let writer = sink.out.into_inner().map_err(|e| database(e.error()))?;
        writer.finish().map_err(pg)?;
        Ok(())
    }
}

/// COPY's text format (for the dimension rows): tab-separated, `\N` for null, backslash escapes.
struct CopySink<W: Write> {
    out: W,
    line: Vec<u8>,
    /// Integers as text without `fmt`'s machinery, which was a tenth of the writing thread's time.
    digits: itoa::Buffer,
}

impl<W: Write> RowSink for CopySink<W> {
    fn row(&mut self, cells: &[Cell]) -> Result<(), WarehouseError> {
        self.line.clear();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                self.line.push(b'\t');
            }
            match cell {
                Cell::Null => self.line.extend_from_slice(b"\\N"),
                Cell::Text(text) => {
                    for b in text.bytes() {
                        match b {
                            b'\\' => self.line.extend_from_slice(b"\\\\"),
                            b'\t' => self.line.extend_from_slice(b"\\t"),
                            b'\n' => self.line.extend_from_slice(b"\\n"),
                            b'\r' => self.line.extend_from_slice(b"\\r"),
                            other => self.line.push(other),
                        }
                    }
                }
                Cell::Number(n) => self.line.extend_from_slice(n.as_bytes()),
                Cell::Integer(i) => self.line.extend_from_slice(self.digits.format(*i).as_bytes()),
                Cell::Date(d) => {
                    let _ = write!(self.line, "{}", d.format("%Y-%m-%d"));
                }
            }
        }
        self.line.push(b'\n');
        self.out.write_all(&self.line).map_err(database)
    }
}

/// Fact rows as binary COPY tuples, numbered from 1 in the CSV's order in the fact key.
struct FactSink<W: Write> {
    out: W,
    tuple: Vec<u8>,
    tuples: BinaryTuples,
    /// The last row number written.
    number: i64,
}

impl<W: Write> RowSink for FactSink<W> {
    fn row(&mut self, cells: &[Cell]) -> Result<(), WarehouseError> {
        self.number += 1;
        self.tuple.clear();
        self.tuples.write(self.number, cells, &mut self.tuple)?;
        self.out.write_all(&self.tuple).map_err(database)
    }
}

/// Bytes of COPY data handed to the thread that sends them at a time: whole tuples, enough that the hand-over
/// costs nothing.
const CHUNK_BYTES: usize = 256 * 1024;

/// How long a kept staging connection may take to answer before the swap starts another.
const STAGED_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The memory the server may sort the fact key in.
const KEY_SORT_MEMORY: &str = "256MB";

/// Tuples of COPY data gathered into chunks for the sending thread.
struct Chunks {
    sender: SyncSender<Vec<u8>>,
    chunk: Vec<u8>,
}

impl Chunks {
    fn send(&mut self) -> std::io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_BYTES + 4096));
        self.sender
            .send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the COPY stream ended"))
    }
}

impl Write for Chunks {
    /// `FactSink` writes one whole tuple per call, so a chunk always ends at a tuple's end.
    fn write(&mut self, tuple: &[u8]) -> std::io::Result<usize> {
        self.chunk.extend_from_slice(tuple);
        if self.chunk.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(tuple.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl PostgresWarehouse {
    /// Streams the fact rows of `fill` into `table`'s staging table, each row numbered (from 1, in the CSV's
    /// order) in the fact key: this thread encodes the rows while another sends them. The COPY ends only when all
    /// rows were written; on any error it is dropped unfinished, which aborts it.
    fn copy_facts(
        client: &mut postgres::Client,
        table: &TableLayout,
        fill: &mut dyn FnMut(&mut dyn RowSink) -> Result<(), WarehouseError>,
    ) -> Result<(), WarehouseError> {
        // FREEZE (allowed because the table was created in this transaction, which no other can see until it
        // commits) writes the rows as already visible to everyone: os-api's first scan of a 1M-row table then
        // takes 61-67 ms, not 80-95 ms spent marking and dirtying every page, and autovacuum's pass after the load
        // 0.7 ms, not 47 ms writing every page again. The COPY itself costs the same.
        let statement = format!(
            "COPY {} ({}, {}) FROM STDIN (FORMAT binary, FREEZE)",
            quote_identifier(&staging_name(&table.name)),
            quote_identifier(FACT_KEY),
            column_list(table)
        );
        let mut writer = client.copy_in(&statement).map_err(pg)?;
        let complete = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let (sender, chunks) = sync_channel::<Vec<u8>>(2);
            let complete = &complete;
            let stream = scope.spawn(move || -> Result<(), WarehouseError> {
                writer.write_all(HEADER).map_err(database)?;
                for chunk in chunks {
                    writer.write_all(&chunk).map_err(database)?;
                }
                if complete.load(Ordering::Acquire) {
                    writer.write_all(TRAILER).map_err(database)?;
                    writer.finish().map_err(pg)?;
                }
                Ok(())
            });
            let mut sink = FactSink {
                out: Chunks {
                    sender,
                    chunk: Vec::with_capacity(CHUNK_BYTES + 4096),
                },
                tuple: Vec::with_capacity(1024),
                tuples: BinaryTuples::new(&table.columns),
                number: 0,
            };
            let filled = fill(&mut sink).and_then(|()| sink.out.flush().map_err(database));
            if filled.is_ok() {
                complete.store(true, Ordering::Release);
            }
            // Closing the channel ends the stream: finished if every row went, aborted otherwise.
            drop(sink);
            let streamed = stream
                .join()
                .unwrap_or_else(|_| Err(WarehouseError::Database("the COPY stream panicked".into())));
            match (filled, streamed) {
                (Err(WarehouseError::Stopped), _) => Err(WarehouseError::Stopped),
                (_, Err(e)) => Err(e),
                (filled, Ok(())) => filled,
            }
        })
    }
}

impl Warehouse for PostgresWarehouse {
    fn stage(&self, layout: &StarLayout, feed: &mut dyn StagingFeed) -> Result<(), WarehouseError> {
        let mut client = self.connect()?;
        let fact = &layout.fact.name;
        let leftovers = package_tables(Self::tables(&mut client, fact)?, fact, Tables::Staging);
        let mut filled = || -> Result<(), WarehouseError> {
            // One transaction from the staging tables' creation to their last row. The key's build then reads
            // rows this transaction wrote, with no commit status to look up and record on every page, and one
            // backend's COPY beside the loader's threads keeps both cores as busy as two did: the benchmark's
            // load went from 0.86x to 0.96x of `psql \copy` with it. A crash or a kill rolls it all back,
            // staging tables included.
            client
                .batch_execute(&script(&[
                    "BEGIN".to_owned(),
                    drop_sql(&leftovers),
                    // The row ids are written with the rows, and the primary key built once they are all in:
                    // keeping an identity sequence and a B-tree up to date row by row cost the server more than the
                    // COPY itself.
                    create_staging_sql(layout, &format!("{} BIGINT NOT NULL", quote_identifier(FACT_KEY))),
                ]))
                .map_err(pg)?;
            Self::copy_facts(&mut client, &layout.fact, &mut |sink| feed.facts(sink))?;
            // More memory for the key's sort than the server's default 64 MB, for this transaction only: a bound
            // the server keeps whatever the load. The key's pages are filled whole (B-tree leaves default to 90 %,
            // room for inserts a fact table never gets: a reload replaces it), so the index the build writes, and
            // logs, and syncs before the commit is a tenth smaller.
            client
                .batch_execute(&format!(
                    "SET LOCAL maintenance_work_mem = '{KEY_SORT_MEMORY}';\n\
                     ALTER TABLE {} ADD PRIMARY KEY ({}) WITH (fillfactor = 100)",
                    quote_identifier(&staging_name(fact)),
                    quote_identifier(FACT_KEY)
                ))
                .map_err(pg)?;
            for (i, dimension) in layout.dimensions.iter().enumerate() {
                Self::copy(&mut client, dimension, &mut |sink| feed.dimension(i, sink))?;
            }
            // Fresh statistics for the (small) dimension tables before the swap, so os-api's first joins plan
            // well; the fact table is left to autovacuum's analyze, which a bulk load triggers anyway, because
            // sampling it here cost a third of the load's time in the benchmark.
            let mut finish: Vec<String> = layout
                .dimensions
                .iter()
                .map(|t| format!("ANALYZE {}", quote_identifier(&staging_name(&t.name))))
                .collect();
            finish.push("COMMIT".to_owned());
            client.batch_execute(&script(&finish)).map_err(pg)
        };
        let result = filled();
        if result.is_ok() {
            if let Ok(mut slot) = self.staged.lock() {
                *slot = Some((fact.clone(), client));
            }
        } else {
            // Closing the connection ends an interrupted COPY and rolls its transaction back.
            drop(client);
            let staging: Vec<String> = layout.table_names().iter().map(|t| staging_name(t)).collect();
            let dropped = self
                .connect()
                .and_then(|mut c| c.batch_execute(&drop_sql(&staging)).map_err(pg));
            if let Err(e) = dropped {
                tracing::error!(error = %e, "could not drop the staging tables of a failed load");
            }
        }
        result
    }

    fn swap(&self, layout: &StarLayout, job_id: i64) -> Result<(), WarehouseError> {
        let mut client = self.connect_after_staging(&layout.fact.name)?;
        let mut tx = client.transaction().map_err(pg)?;
        let status: Option<String> = tx
            .query_opt(
                "SELECT status FROM load_jobs WHERE id = $1 FOR UPDATE",
                &[&job_id],
            )
            .map_err(pg)?
            .map(|row| row.get(0));
        if status.as_deref().is_none_or(is_terminal) {
            return Err(WarehouseError::JobEnded);
        }
        let fact = &layout.fact.name;
        let current = package_tables(Self::tables(&mut tx, fact)?, fact, Tables::Current);
        let mut sql = vec![drop_sql(&current)];
        for table in layout.table_names() {
            let staging = staging_name(table);
            sql.push(format!(
                "ALTER TABLE {} RENAME TO {}",
                quote_identifier(&staging),
                quote_identifier(table)
            ));
            sql.push(format!(
                "ALTER INDEX IF EXISTS {} RENAME TO {}",
                quote_identifier(&format!("{staging}_pkey")),
                quote_identifier(&format!("{table}_pkey"))
            ));
        }
        tx.batch_execute(&script(&sql)).map_err(pg)?;
        tx.commit().map_err(pg)
    }

    fn drop_staging(&self, fact_table: &str) -> Result<(), WarehouseError> {
        let mut client = self.connect()?;
        let staging = package_tables(
            Self::tables(&mut client, fact_table)?,
            fact_table,
            Tables::Staging,
        );
        client.batch_execute(&drop_sql(&staging)).map_err(pg)
    }

    fn drop_tables(&self, fact_table: &str) -> Result<(), WarehouseError> {
        let mut client = self.connect()?;
        let tables = package_tables(Self::tables(&mut client, fact_table)?, fact_table, Tables::All);
        client.batch_execute(&drop_sql(&tables)).map_err(pg)
    }

    fn count_rows(&self, table: &str) -> Result<i64, WarehouseError> {
        let mut client = self.connect()?;
        let row = client
            .query_one(&format!("SELECT count(*) FROM {}", quote_identifier(table)), &[])
            .map_err(pg)?;
        Ok(row.get(0))
    }

    fn tables_with_prefix(&self, prefix: &str) -> Result<Vec<String>, WarehouseError> {
        let mut client = self.connect()?;
        Self::tables(&mut client, prefix)
    }
}

/// A server that went away (the connection closed, an operator's shutdown or restart, a connection exception)
/// is unavailable, worth trying again; anything else is the statement's own failure.
fn pg(error: postgres::Error) -> WarehouseError {
    let class = error.code().map(|state| &state.code()[..2]);
    if error.is_closed() || matches!(class, Some("08" | "57")) {
        WarehouseError::Unavailable(error.to_string())
    } else {
        WarehouseError::Database(error.to_string())
    }
}

#[cfg(test)]
#[path = "postgres_tests.rs"]
mod tests;
