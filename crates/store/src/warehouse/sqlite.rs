//! SQLite: multi-row inserts into the staging tables on a pooled connection, then swapped in.

use conductor_loader::star::{FACT_KEY, SqlType, StarLayout, TableLayout, staging_name};
use conductor_loader::warehouse::quote_identifier;
use conductor_loader::{Cell, RowSink, StagingFeed, Warehouse, WarehouseError};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::sqlite::SqliteConnection;

use super::{
    InTransaction, Tables, column_list, create_staging_sql, database, drop_sql, is_terminal, package_tables,
    script,
};
use crate::schema::load_jobs;
use crate::write_turn::WriteTurns;

/// SQLite through multi-row inserts on a pooled connection.
#[derive(Clone)]
pub struct SqliteWarehouse {
    pool: Pool<ConnectionManager<SqliteConnection>>,
    turns: WriteTurns,
}

impl std::fmt::Debug for SqliteWarehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteWarehouse").finish_non_exhaustive()
    }
}

/// SQLite allows 32766 bound values per statement; stay well under it.
const SQLITE_MAX_VALUES: usize = 16_000;
/// Rows per insert statement at most.
const SQLITE_MAX_ROWS: usize = 500;

#[derive(QueryableByName)]
struct NameRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
}

impl SqliteWarehouse {
    pub(crate) fn new(pool: Pool<ConnectionManager<SqliteConnection>>, turns: WriteTurns) -> Self {
        Self { pool, turns }
    }

    fn connection(
        &self,
    ) -> Result<diesel::r2d2::PooledConnection<ConnectionManager<SqliteConnection>>, WarehouseError> {
        self.pool.get().map_err(database)
    }

    fn tables(conn: &mut SqliteConnection, prefix: &str) -> Result<Vec<String>, WarehouseError> {
        let rows: Vec<NameRow> = diesel::sql_query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, length(?1)) = ?1 ORDER BY name",
        )
        .bind::<diesel::sql_types::Text, _>(prefix)
        .load(conn)
        .map_err(database)?;
        Ok(rows.into_iter().map(|r| r.name).collect())
    }
}

/// Rows per transaction while staging: the staging tables are new and no reader sees them, so committing less
/// often costs nothing in safety; a transaction of this size holds the write lock for tens of milliseconds, so a
/// heartbeat or progress write from elsewhere waits that long at most.
pub(crate) const SQLITE_TRANSACTION_ROWS: usize = 20_000;

/// The NULL of each bind type: a column binds the same type whatever its cells hold, so a full batch's statement
/// is always the same one and stays prepared.
static NULL_TEXT: Option<&str> = None;
static NULL_INTEGER: Option<i64> = None;

/// One multi-row INSERT into a staging table. Unlike a `sql_query`, which diesel never caches, its SQL and bind
/// types are the same for every full batch, so diesel keeps it prepared: parsing a 500-row statement per batch
/// was a tenth of a SQLite load's time.
struct StagingInsert<'a> {
    head: &'a str,
    integer_columns: &'a [bool],
    cells: &'a [Cell],
}

impl diesel::query_builder::QueryId for StagingInsert<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite> for StagingInsert<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Nullable, Text};
        out.push_sql(self.head);
        let width = self.integer_columns.len().max(1);
        for (r, row) in self.cells.chunks(width).enumerate() {
            out.push_sql(if r == 0 { "(" } else { ", (" });
            for (c, (cell, &integer)) in row.iter().zip(self.integer_columns).enumerate() {
                if c > 0 {
                    out.push_sql(", ");
                }
                match cell {
                    Cell::Null if integer => out.push_bind_param::<Nullable<BigInt>, _>(&NULL_INTEGER)?,
                    Cell::Null => out.push_bind_param::<Nullable<Text>, _>(&NULL_TEXT)?,
                    Cell::Text(t) | Cell::Number(t) => out.push_bind_param::<Text, _>(t)?,
                    Cell::Integer(i) => out.push_bind_param::<BigInt, _>(i)?,
                    // `InsertSink::row` writes dates as text before they get here.
                    Cell::Date(_) => {
                        return Err(diesel::result::Error::QueryBuilderError(
                            "a date reached the insert unconverted".into(),
                        ));
                    }
                }
            }
            out.push_sql(")");
        }
        Ok(())
    }
}

impl RunQueryDsl<SqliteConnection> for StagingInsert<'_> {}

struct InsertSink<'c> {
    conn: &'c mut SqliteConnection,
    turns: &'c WriteTurns,
    /// This writer's turn, held while its transaction is open (see [`WriteTurns`]).
    turn: Option<parking_lot::FairMutexGuard<'c, ()>>,
    /// `INSERT INTO "t" ("a", "b") VALUES `.
    head: String,
    integer_columns: Vec<bool>,
    /// `batch_rows` rows of `width` cells, reused from batch to batch; the first `rows` are this batch's.
    cells: Vec<Cell>,
    rows: usize,
    batch_rows: usize,
    /// Rows written in the open transaction, if one is open.
    in_transaction: Option<usize>,
}

impl InsertSink<'_> {
    fn flush(&mut self) -> Result<(), WarehouseError> {
        if self.rows == 0 {
            return Ok(());
        }
        if self.in_transaction.is_none() {
            self.turn = self.turns.take();
            self.conn.batch_execute("BEGIN IMMEDIATE").map_err(database)?;
            self.in_transaction = Some(0);
        }
        let width = self.integer_columns.len().max(1);
        StagingInsert {
            head: &self.head,
            integer_columns: &self.integer_columns,
            cells: &self.cells[..self.rows * width],
        }
        .execute(self.conn)
        .map_err(database)?;
        let written = self.in_transaction.unwrap_or(0) + self.rows;
        self.rows = 0;
        if written >= SQLITE_TRANSACTION_ROWS {
            self.commit()?;
        } else {
            self.in_transaction = Some(written);
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), WarehouseError> {
        if self.in_transaction.take().is_some() {
            let committed = self.conn.batch_execute("COMMIT").map_err(database);
            self.turn = None;
            committed?;
        }
        Ok(())
    }

    /// Ends an open transaction without its rows (the load failed; the staging tables are dropped next).
    fn abandon(&mut self) {
        if self.in_transaction.take().is_some()
            && let Err(e) = self.conn.batch_execute("ROLLBACK")
        {
            tracing::error!(error = %e, "could not roll back a failed staging transaction");
        }
        self.turn = None;
    }
}

impl RowSink for InsertSink<'_> {
    fn row(&mut self, cells: &[Cell]) -> Result<(), WarehouseError> {
        let width = self.integer_columns.len().max(1);
        let start = self.rows * width;
        if self.cells.len() < start + width {
            self.cells.resize(start + width, Cell::Null);
        }
        for (slot, cell) in self.cells[start..start + width].iter_mut().zip(cells) {
            match cell {
                Cell::Date(d) => *slot = Cell::Text(d.format("%Y-%m-%d").to_string()),
                cell => slot.assign_from(cell),
            }
        }
        self.rows += 1;
        if self.rows >= self.batch_rows {
            self.flush()?;
        }
        Ok(())
    }
}

fn insert_all(
    conn: &mut SqliteConnection,
    turns: &WriteTurns,
    table: &TableLayout,
    fill: &mut dyn FnMut(&mut dyn RowSink) -> Result<(), WarehouseError>,
) -> Result<(), WarehouseError> {
    let width = table.columns.len().max(1);
    let mut sink = InsertSink {
        conn,
        turns,
        turn: None,
        head: format!(
            "INSERT INTO {} ({}) VALUES ",
            quote_identifier(&staging_name(&table.name)),
            column_list(table)
        ),
        integer_columns: table
            .columns
            .iter()
            .map(|c| c.sql_type == SqlType::Integer)
            .collect(),
        cells: Vec::new(),
        rows: 0,
        batch_rows: (SQLITE_MAX_VALUES / width).clamp(1, SQLITE_MAX_ROWS),
        in_transaction: None,
    };
    let filled = fill(&mut sink)
        .and_then(|()| sink.flush())
        .and_then(|()| sink.commit());
    if filled.is_err() {
        sink.abandon();
    }
    filled
}

impl Warehouse for SqliteWarehouse {
    fn stage(&self, layout: &StarLayout, feed: &mut dyn StagingFeed) -> Result<(), WarehouseError> {
        let mut conn = self.connection()?;
        let fact = &layout.fact.name;
        let leftovers = package_tables(Self::tables(&mut conn, fact)?, fact, Tables::Staging);
        // An INTEGER PRIMARY KEY is SQLite's rowid: assigned in insert order, nothing stored twice.
        let fact_key = format!("{} INTEGER PRIMARY KEY", quote_identifier(FACT_KEY));
        {
            let _turn = self.turns.take();
            conn.batch_execute(&script(&[
                drop_sql(&leftovers),
                create_staging_sql(layout, &fact_key),
            ]))
            .map_err(database)?;
        }
        let mut filled = || -> Result<(), WarehouseError> {
            insert_all(&mut conn, &self.turns, &layout.fact, &mut |sink| feed.facts(sink))?;
            for (i, dimension) in layout.dimensions.iter().enumerate() {
                insert_all(&mut conn, &self.turns, dimension, &mut |sink| {
                    feed.dimension(i, sink)
                })?;
            }
            Ok(())
        };
        let result = filled();
        // The staging statements name tables that are renamed or dropped next: keeping them prepared would hold
        // memory on this pooled connection load after load. Replacing the cache drops them.
        conn.set_prepared_statement_cache_size(diesel::connection::CacheSize::Disabled);
        conn.set_prepared_statement_cache_size(diesel::connection::CacheSize::Unbounded);
        if result.is_err() {
            let staging: Vec<String> = layout.table_names().iter().map(|t| staging_name(t)).collect();
            let _turn = self.turns.take();
            if let Err(e) = conn.batch_execute(&drop_sql(&staging)) {
                tracing::error!(error = %e, "could not drop the staging tables of a failed load");
            }
        }
        result
    }

    fn swap(&self, layout: &StarLayout, job_id: i64) -> Result<(), WarehouseError> {
        let mut conn = self.connection()?;
        let _turn = self.turns.take();
        conn.immediate_transaction(|conn| -> Result<(), InTransaction> {
            let status: Option<String> = load_jobs::table
                .find(job_id)
                .select(load_jobs::status)
                .first(conn)
                .optional()
                .map_err(database)?;
            if status.as_deref().is_none_or(is_terminal) {
                return Err(InTransaction(WarehouseError::JobEnded));
            }
            let fact = &layout.fact.name;
            let current = package_tables(Self::tables(conn, fact)?, fact, Tables::Current);
            let mut sql = vec![drop_sql(&current)];
            for table in layout.table_names() {
                sql.push(format!(
                    "ALTER TABLE {} RENAME TO {}",
                    quote_identifier(&staging_name(table)),
                    quote_identifier(table)
                ));
            }
            conn.batch_execute(&script(&sql)).map_err(database)?;
            Ok(())
        })
        .map_err(|e| e.0)
    }

    fn drop_staging(&self, fact_table: &str) -> Result<(), WarehouseError> {
        let mut conn = self.connection()?;
        let staging = package_tables(Self::tables(&mut conn, fact_table)?, fact_table, Tables::Staging);
        let _turn = self.turns.take();
        conn.batch_execute(&drop_sql(&staging)).map_err(database)
    }

    fn drop_tables(&self, fact_table: &str) -> Result<(), WarehouseError> {
        let mut conn = self.connection()?;
        let tables = package_tables(Self::tables(&mut conn, fact_table)?, fact_table, Tables::All);
        let _turn = self.turns.take();
        conn.batch_execute(&drop_sql(&tables)).map_err(database)
    }

    fn count_rows(&self, table: &str) -> Result<i64, WarehouseError> {
        let mut conn = self.connection()?;
        let row: CountRow = diesel::sql_query(format!(
            "SELECT count(*) AS count FROM {}",
            quote_identifier(table)
        ))
        .get_result(&mut conn)
        .map_err(database)?;
        Ok(row.count)
    }

    fn tables_with_prefix(&self, prefix: &str) -> Result<Vec<String>, WarehouseError> {
        let mut conn = self.connection()?;
        Self::tables(&mut conn, prefix)
    }
}
