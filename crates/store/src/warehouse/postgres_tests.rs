//! The PostgreSQL warehouse against the test server: the swap runs on the connection its staging ended on, and
//! on a new one when that connection's backend is gone.

use conductor_core::{NewLoadJob, PackageId, Timestamp, UserId};
use conductor_loader::star::{Column, SqlType, StarLayout, TableLayout};
use conductor_loader::{Cell, RowSink, StagingFeed, Warehouse, WarehouseError};

use super::PostgresWarehouse;
use crate::testing::TestDatabase;
use crate::{Database, DatabaseUrl};

/// `rows` fact rows, no dimensions.
struct Rows(i64);

impl StagingFeed for Rows {
    fn facts(&mut self, sink: &mut dyn RowSink) -> Result<(), WarehouseError> {
        for amount in 0..self.0 {
            sink.row(&[Cell::Integer(amount)])?;
        }
        Ok(())
    }

    fn dimension(&mut self, _index: usize, _sink: &mut dyn RowSink) -> Result<(), WarehouseError> {
        Ok(())
    }
}

fn layout() -> StarLayout {
    StarLayout {
        fact: TableLayout {
            name: "fdp__kept".into(),
            columns: vec![Column {
                name: "amount".into(),
                sql_type: SqlType::Integer,
            }],
        },
        dimensions: Vec::new(),
    }
}

/// The backend of the connection kept after the last staging, if one is kept.
fn kept_backend(warehouse: &PostgresWarehouse) -> Option<i32> {
    let mut slot = warehouse.staged.lock().unwrap();
    let (_, client) = slot.as_mut()?;
    Some(client.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0))
}

fn backend_alive(warehouse: &PostgresWarehouse, pid: i32) -> bool {
    let mut client = warehouse.connect().unwrap();
    client
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", &[&pid])
        .unwrap()
        .get::<_, i64>(0)
        == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_swap_takes_the_staging_connection_or_a_new_one_when_it_died() {
    let db = TestDatabase::postgres().unwrap();
    let database = Database::open(&DatabaseUrl::parse(db.url()).unwrap(), 2).unwrap();
    database.migrate().await.unwrap();
    let owner = UserId::from_email("ada@example.test");
    let job = database
        .repositories()
        .load_jobs
        .enqueue_claimed(
            &NewLoadJob {
                package_id: PackageId::parse(&format!("{owner}:kept")).unwrap(),
                datapackage_url: "http://127.0.0.1:8000/datastore/files/a/datapackage.json".into(),
                owner,
            },
            Timestamp::from_millis(1),
        )
        .await
        .unwrap();
    let warehouse = PostgresWarehouse::new(db.url());
    let layout = layout();
    // The postgres crate runs a runtime of its own, which cannot start on this test's executor threads.
    let staged = tokio::task::block_in_place(|| {
        warehouse.stage(&layout, &mut Rows(3)).unwrap();
        let staged = kept_backend(&warehouse).expect("the staging connection is kept");
        warehouse.swap(&layout, job.id).unwrap();
        assert_eq!(kept_backend(&warehouse), None, "the swap took it");
        assert_eq!(warehouse.count_rows("fdp__kept").unwrap(), 3);
        staged
    });
    // The swap took it and let it go: its backend ends once the connection is closed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while tokio::task::block_in_place(|| backend_alive(&warehouse, staged)) {
        assert!(
            std::time::Instant::now() < deadline,
            "backend {staged} outlived the swap"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    tokio::task::block_in_place(|| {
        // A reload whose kept connection's backend is terminated before the swap: the swap starts another.
        warehouse.stage(&layout, &mut Rows(5)).unwrap();
        let staged = kept_backend(&warehouse).expect("the staging connection is kept");
        let mut admin = warehouse.connect().unwrap();
        assert!(
            admin
                .query_one("SELECT pg_terminate_backend($1)", &[&staged])
                .unwrap()
                .get::<_, bool>(0)
        );
        warehouse.swap(&layout, job.id).unwrap();
        assert_eq!(warehouse.count_rows("fdp__kept").unwrap(), 5);
        assert_eq!(
            warehouse.tables_with_prefix("fdp__kept").unwrap(),
            vec!["fdp__kept".to_owned()]
        );

        // Another load's staging connection is left for that load's swap.
        let other = StarLayout {
            fact: TableLayout {
                name: "fdp__other".into(),
                ..layout.fact.clone()
            },
            dimensions: Vec::new(),
        };
        warehouse.stage(&layout, &mut Rows(2)).unwrap();
        warehouse.stage(&other, &mut Rows(1)).unwrap();
        let others = kept_backend(&warehouse).expect("the other staging's connection is kept");
        warehouse.swap(&layout, job.id).unwrap();
        assert_eq!(warehouse.count_rows("fdp__kept").unwrap(), 2);
        assert_eq!(kept_backend(&warehouse), Some(others));
        warehouse.swap(&other, job.id).unwrap();
        assert_eq!(kept_backend(&warehouse), None);
        assert_eq!(warehouse.count_rows("fdp__other").unwrap(), 1);
    });
}
