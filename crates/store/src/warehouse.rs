//! The loader's [`Warehouse`] port on both backends. PostgreSQL streams rows with `COPY ... FROM STDIN` on a
//! connection of the `postgres` crate (diesel's `copy_from` needs a table known at compile time, and ours are named
//! at run time); SQLite takes multi-row inserts. Both fill staging tables and swap them in with one transaction that
//! first checks the load job is still running.

use std::io::{BufWriter, Write};

use conductor_core::LoadStatus;
use conductor_loader::star::{FACT_KEY, StarLayout, TableLayout, staging_name};
use conductor_loader::warehouse::{belongs_to, quote_identifier};
use conductor_loader::{Cell, RowSink, StagingFeed, Warehouse, WarehouseError};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::sqlite::SqliteConnection;

use crate::schema::load_jobs;

fn database(error: impl std::fmt::Display) -> WarehouseError {
    WarehouseError::Database(error.to_string())
}

/// `table`'s DDL: its columns, `primary_key` (one of them) marked, after a `leading` column of the caller's.
fn create_table_sql(table: &TableLayout, primary_key: Option<&str>, leading: Option<&str>) -> String {
    let columns: Vec<String> = leading
        .map(str::to_owned)
        .into_iter()
        .chain(table.columns.iter().map(|c| {
            let key = if Some(c.name.as_str()) == primary_key {
                " PRIMARY KEY"
            } else {
                ""
            };
            format!("{} {}{key}", quote_identifier(&c.name), c.sql_type.sql())
        }))
        .collect();
    format!(
        "CREATE TABLE {} ({})",
        quote_identifier(&staging_name(&table.name)),
        columns.join(", ")
    )
}

/// The staging tables' DDL; `fact_key` is the fact table's row-id column as the backend writes it, assigned by
/// the database so the rows streamed in never name it.
fn create_staging_sql(layout: &StarLayout, fact_key: &str) -> String {
    let mut sql = vec![create_table_sql(&layout.fact, None, Some(fact_key))];
    for dimension in &layout.dimensions {
        sql.push(create_table_sql(
            dimension,
            Some(conductor_loader::star::DIMENSION_KEY),
            None,
        ));
    }
    sql.join(";\n")
}

fn drop_sql(tables: &[String]) -> String {
    tables
        .iter()
        .map(|t| format!("DROP TABLE IF EXISTS {}", quote_identifier(t)))
        .collect::<Vec<_>>()
        .join(";\n")
}

/// Statements joined into one script, leaving out empty ones.
fn script(parts: &[String]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(";\n")
}

fn column_list(table: &TableLayout) -> String {
    table
        .columns
        .iter()
        .map(|c| quote_identifier(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which of a package's tables to pick from a list of names.
#[derive(Clone, Copy)]
enum Tables {
    /// The staging tables (`…__new`).
    Staging,
    /// The tables readers see.
    Current,
    /// Both.
    All,
}

/// The names in `names` that are `fact_table`'s package's tables of the kind asked for.
fn package_tables(names: Vec<String>, fact_table: &str, kind: Tables) -> Vec<String> {
    names
        .into_iter()
        .filter(|t| {
            belongs_to(t, fact_table)
                && match kind {
                    Tables::Staging => t.ends_with("__new"),
                    Tables::Current => !t.ends_with("__new"),
                    Tables::All => true,
                }
        })
        .collect()
}

fn is_terminal(status: &str) -> bool {
    status
        .parse::<LoadStatus>()
        .map(LoadStatus::is_terminal)
        .unwrap_or(true)
}

/// PostgreSQL through COPY.
#[derive(Clone)]
pub struct PostgresWarehouse {
    url: String,
}

impl std::fmt::Debug for PostgresWarehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresWarehouse").finish_non_exhaustive()
    }
}

impl PostgresWarehouse {
    pub fn new(url: &str) -> Self {
        Self { url: url.to_owned() }
    }

    fn connect(&self) -> Result<postgres::Client, WarehouseError> {
        postgres::Client::connect(&self.url, postgres::NoTls).map_err(database)
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
            .map_err(database)?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }

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
        let writer = client.copy_in(&statement).map_err(database)?;
        let mut sink = CopySink {
            out: BufWriter::with_capacity(256 * 1024, writer),
            line: Vec::with_capacity(1024),
        };
        // On an error the writer is dropped unfinished, which aborts the COPY.
        fill(&mut sink)?;
        let writer = sink.out.into_inner().map_err(|e| database(e.error()))?;
        writer.finish().map_err(database)?;
        Ok(())
    }
}

/// COPY's text format: tab-separated, `\N` for null, backslash escapes.
struct CopySink<W: Write> {
    out: BufWriter<W>,
    line: Vec<u8>,
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
                Cell::Integer(i) => {
                    let _ = write!(self.line, "{i}");
                }
                Cell::Date(d) => {
                    let _ = write!(self.line, "{}", d.format("%Y-%m-%d"));
                }
            }
        }
        self.line.push(b'\n');
        self.out.write_all(&self.line).map_err(database)
    }
}

impl Warehouse for PostgresWarehouse {
    fn stage(&self, layout: &StarLayout, feed: &mut dyn StagingFeed) -> Result<(), WarehouseError> {
        let mut client = self.connect()?;
        let fact = &layout.fact.name;
        let leftovers = package_tables(Self::tables(&mut client, fact)?, fact, Tables::Staging);
        client
            .batch_execute(&script(&[
                drop_sql(&leftovers),
                create_staging_sql(
                    layout,
                    &format!(
                        "{} BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                        quote_identifier(FACT_KEY)
                    ),
                ),
            ]))
            .map_err(database)?;
        let mut filled = || -> Result<(), WarehouseError> {
            Self::copy(&mut client, &layout.fact, &mut |sink| feed.facts(sink))?;
            for (i, dimension) in layout.dimensions.iter().enumerate() {
                Self::copy(&mut client, dimension, &mut |sink| feed.dimension(i, sink))?;
            }
            // Fresh statistics for the (small) dimension tables before the swap, so os-api's first joins plan
            // well; the fact table is left to autovacuum's analyze, which a bulk load triggers anyway, because
            // sampling it here cost a third of the load's time in the benchmark.
            let staging: Vec<String> = layout
                .dimensions
                .iter()
                .map(|t| format!("ANALYZE {}", quote_identifier(&staging_name(&t.name))))
                .collect();
            client.batch_execute(&script(&staging)).map_err(database)
        };
        let result = filled();
        // Closing the connection ends an interrupted COPY and releases its locks on the staging tables.
        drop(client);
        if result.is_err() {
            let staging: Vec<String> = layout.table_names().iter().map(|t| staging_name(t)).collect();
            let dropped = self
                .connect()
                .and_then(|mut c| c.batch_execute(&drop_sql(&staging)).map_err(database));
            if let Err(e) = dropped {
                tracing::error!(error = %e, "could not drop the staging tables of a failed load");
            }
        }
        result
    }

    fn swap(&self, layout: &StarLayout, job_id: i64) -> Result<(), WarehouseError> {
        let mut client = self.connect()?;
        let mut tx = client.transaction().map_err(database)?;
        let status: Option<String> = tx
            .query_opt(
                "SELECT status FROM load_jobs WHERE id = $1 FOR UPDATE",
                &[&job_id],
            )
            .map_err(database)?
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
        tx.batch_execute(&script(&sql)).map_err(database)?;
        tx.commit().map_err(database)
    }

    fn drop_staging(&self, fact_table: &str) -> Result<(), WarehouseError> {
        let mut client = self.connect()?;
        let staging = package_tables(
            Self::tables(&mut client, fact_table)?,
            fact_table,
            Tables::Staging,
        );
        client.batch_execute(&drop_sql(&staging)).map_err(database)
    }

    fn drop_tables(&self, fact_table: &str) -> Result<(), WarehouseError> {
        let mut client = self.connect()?;
        let tables = package_tables(Self::tables(&mut client, fact_table)?, fact_table, Tables::All);
        client.batch_execute(&drop_sql(&tables)).map_err(database)
    }

    fn count_rows(&self, table: &str) -> Result<i64, WarehouseError> {
        let mut client = self.connect()?;
        let row = client
            .query_one(&format!("SELECT count(*) FROM {}", quote_identifier(table)), &[])
            .map_err(database)?;
        Ok(row.get(0))
    }

    fn tables_with_prefix(&self, prefix: &str) -> Result<Vec<String>, WarehouseError> {
        let mut client = self.connect()?;
        Self::tables(&mut client, prefix)
    }
}

/// An error inside a diesel transaction (which must convert from diesel's own errors).
struct InTransaction(WarehouseError);

impl From<diesel::result::Error> for InTransaction {
    fn from(error: diesel::result::Error) -> Self {
        Self(database(error))
    }
}

impl From<WarehouseError> for InTransaction {
    fn from(error: WarehouseError) -> Self {
        Self(error)
    }
}

/// SQLite through multi-row inserts on a pooled connection.
#[derive(Clone)]
pub struct SqliteWarehouse {
    pool: Pool<ConnectionManager<SqliteConnection>>,
}

impl std::fmt::Debug for SqliteWarehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteWarehouse").finish_non_exhaustive()
    }
}

/// SQLite allows 32766 bound values per statement; stay well under it.
const SQLITE_MAX_VALUES: usize = 16_000;
/// Rows per insert statement at most; each statement commits on its own, so the write lock is held briefly and
/// job heartbeats get through.
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
    pub(crate) fn new(pool: Pool<ConnectionManager<SqliteConnection>>) -> Self {
        Self { pool }
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

struct InsertSink<'c> {
    conn: &'c mut SqliteConnection,
    table: String,
    columns: String,
    width: usize,
    batch: Vec<Vec<Cell>>,
    batch_rows: usize,
}

impl InsertSink<'_> {
    fn flush(&mut self) -> Result<(), WarehouseError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let placeholders = format!("({})", vec!["?"; self.width].join(", "));
        let sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            self.table,
            self.columns,
            vec![placeholders; self.batch.len()].join(", ")
        );
        let mut query = diesel::sql_query(sql).into_boxed::<diesel::sqlite::Sqlite>();
        for row in self.batch.drain(..) {
            for cell in row {
                query = match cell {
                    Cell::Null => {
                        query.bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(None::<String>)
                    }
                    Cell::Text(t) | Cell::Number(t) => query.bind::<diesel::sql_types::Text, _>(t),
                    Cell::Integer(i) => query.bind::<diesel::sql_types::BigInt, _>(i),
                    Cell::Date(d) => {
                        query.bind::<diesel::sql_types::Text, _>(d.format("%Y-%m-%d").to_string())
                    }
                };
            }
        }
        query.execute(self.conn).map_err(database)?;
        Ok(())
    }
}

impl RowSink for InsertSink<'_> {
    fn row(&mut self, cells: &[Cell]) -> Result<(), WarehouseError> {
        self.batch.push(cells.to_vec());
        if self.batch.len() >= self.batch_rows {
            self.flush()?;
        }
        Ok(())
    }
}

fn insert_all(
    conn: &mut SqliteConnection,
    table: &TableLayout,
    fill: &mut dyn FnMut(&mut dyn RowSink) -> Result<(), WarehouseError>,
) -> Result<(), WarehouseError> {
    let width = table.columns.len().max(1);
    let mut sink = InsertSink {
        conn,
        table: quote_identifier(&staging_name(&table.name)),
        columns: column_list(table),
        width,
        batch: Vec::new(),
        batch_rows: (SQLITE_MAX_VALUES / width).clamp(1, SQLITE_MAX_ROWS),
    };
    fill(&mut sink)?;
    sink.flush()
}

impl Warehouse for SqliteWarehouse {
    fn stage(&self, layout: &StarLayout, feed: &mut dyn StagingFeed) -> Result<(), WarehouseError> {
        let mut conn = self.connection()?;
        let fact = &layout.fact.name;
        let leftovers = package_tables(Self::tables(&mut conn, fact)?, fact, Tables::Staging);
        // An INTEGER PRIMARY KEY is SQLite's rowid: assigned in insert order, nothing stored twice.
        let fact_key = format!("{} INTEGER PRIMARY KEY", quote_identifier(FACT_KEY));
        conn.batch_execute(&script(&[
            drop_sql(&leftovers),
            create_staging_sql(layout, &fact_key),
        ]))
        .map_err(database)?;
        let mut filled = || -> Result<(), WarehouseError> {
            insert_all(&mut conn, &layout.fact, &mut |sink| feed.facts(sink))?;
            for (i, dimension) in layout.dimensions.iter().enumerate() {
                insert_all(&mut conn, dimension, &mut |sink| feed.dimension(i, sink))?;
            }
            Ok(())
        };
        let result = filled();
        if result.is_err() {
            let staging: Vec<String> = layout.table_names().iter().map(|t| staging_name(t)).collect();
            if let Err(e) = conn.batch_execute(&drop_sql(&staging)) {
                tracing::error!(error = %e, "could not drop the staging tables of a failed load");
            }
        }
        result
    }

    fn swap(&self, layout: &StarLayout, job_id: i64) -> Result<(), WarehouseError> {
        let mut conn = self.connection()?;
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
        conn.batch_execute(&drop_sql(&staging)).map_err(database)
    }

    fn drop_tables(&self, fact_table: &str) -> Result<(), WarehouseError> {
        let mut conn = self.connection()?;
        let tables = package_tables(Self::tables(&mut conn, fact_table)?, fact_table, Tables::All);
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
