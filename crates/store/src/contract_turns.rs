//! A load into SQLite leaves other writers their turn: a heartbeat or a progress write while the loader stages
//! rows back to back waits for the staging transaction in progress and no longer. Without turns it waited for
//! whichever transaction its busy handler happened to wake between: several in a row, seconds on a loaded machine,
//! so a long load's progress froze and its heartbeats could be missed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use conductor_core::repo::JobProgress;
use conductor_core::{LoadStatus, NewLoadJob, PackageId, Timestamp, UserId};
use conductor_loader::star::{Column, SqlType, StarLayout, TableLayout};
use conductor_loader::{Cell, RowSink, StagingFeed, WarehouseError};

use crate::testing::TestDatabase;
use crate::warehouse::SQLITE_TRANSACTION_ROWS;
use crate::{Database, DatabaseUrl};

/// Writes asked for while the staging runs; each must get in.
const WRITES: i64 = 20;
/// A bound on the rows staged, so a broken turn fails the test instead of filling the disk.
const MAX_ROWS: u64 = 20_000_000;

/// Fact rows until the other writer is done.
struct UntilWritten {
    written: Arc<AtomicBool>,
    rows: Arc<AtomicU64>,
}

impl StagingFeed for UntilWritten {
    fn facts(&mut self, sink: &mut dyn RowSink) -> Result<(), WarehouseError> {
        let cells = [
            Cell::Integer(7),
            Cell::Text("a label long enough to be text".into()),
        ];
        while !self.written.load(Ordering::SeqCst) && self.rows.load(Ordering::SeqCst) < MAX_ROWS {
            sink.row(&cells)?;
            self.rows.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    fn dimension(&mut self, _index: usize, _sink: &mut dyn RowSink) -> Result<(), WarehouseError> {
        Ok(())
    }
}

/// Ends the feed when the test ends, passed or failed, so a failure does not wait for `MAX_ROWS`.
struct EndFeed(Arc<AtomicBool>);

impl Drop for EndFeed {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_writes_get_in_while_a_load_stages_rows() {
    let db = TestDatabase::sqlite().unwrap();
    let database = Database::open(&DatabaseUrl::parse(db.url()).unwrap(), 4).unwrap();
    database.migrate().await.unwrap();
    let repos = database.repositories();
    let owner = UserId::from_email("ada@example.test");
    let job = repos
        .load_jobs
        .enqueue_claimed(
            &NewLoadJob {
                package_id: PackageId::parse(&format!("{owner}:turns")).unwrap(),
                datapackage_url: "http://127.0.0.1:8000/datastore/files/a/datapackage.json".into(),
                owner,
            },
            Timestamp::from_millis(1),
        )
        .await
        .unwrap();

    let layout = StarLayout {
        fact: TableLayout {
            name: "fdp__turns".into(),
            columns: vec![
                Column {
                    name: "amount".into(),
                    sql_type: SqlType::Integer,
                },
                Column {
                    name: "label".into(),
                    sql_type: SqlType::Text,
                },
            ],
        },
        dimensions: Vec::new(),
    };
    let written = Arc::new(AtomicBool::new(false));
    let rows = Arc::new(AtomicU64::new(0));
    let end_feed = EndFeed(written.clone());
    let warehouse = database.warehouse();
    let staging = {
        let (written, rows) = (written.clone(), rows.clone());
        tokio::task::spawn_blocking(move || {
            let mut feed = UntilWritten { written, rows };
            warehouse.stage(&layout, &mut feed)
        })
    };
    // Well into the staging before the first write.
    while database
        .warehouse()
        .tables_with_prefix("fdp__turns")
        .unwrap()
        .is_empty()
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut staged_during_writes = Vec::new();
    for n in 1..=WRITES {
        let progress = JobProgress {
            status: LoadStatus::LoadingData,
            rows_loaded: n,
            rows_total: None,
            error: None,
        };
        // Spaced out as the loader's own progress writes are, so each one finds the staging at full speed.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let before = rows.load(Ordering::SeqCst);
        let recorded = repos
            .load_jobs
            .record_progress(job.id, &progress, Timestamp::from_millis(n))
            .await;
        staged_during_writes.push(rows.load(Ordering::SeqCst) - before);
        assert!(
            matches!(recorded, Ok(true)),
            "write {n} during the staging: {recorded:?}"
        );
    }
    // A write waits for the rest of the transaction in progress (and the batch the loader had ready). The median,
    // because a write also counts the rows staged while a busy machine had not yet run it at all.
    staged_during_writes.sort_unstable();
    let median = staged_during_writes[staged_during_writes.len() / 2];
    assert!(
        median <= (SQLITE_TRANSACTION_ROWS + 1_000) as u64,
        "a write waited while {median} rows were staged (the median; all: {staged_during_writes:?})"
    );
    drop(end_feed);
    staging.await.unwrap().unwrap();
    assert!(
        rows.load(Ordering::SeqCst) < MAX_ROWS,
        "the staging went on to its bound: the writes were not waited for"
    );
    assert_eq!(
        repos.load_jobs.get(job.id).await.unwrap().unwrap().rows_loaded,
        WRITES
    );
}
