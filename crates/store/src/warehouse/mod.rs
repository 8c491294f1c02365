//! The loader's [`Warehouse`] port on both backends. PostgreSQL streams rows with `COPY ... FROM STDIN` on a
//! connection of the `postgres` crate (diesel's `copy_from` needs a table known at compile time, and ours are named
//! at run time); SQLite takes multi-row inserts. Both fill staging tables and swap them in with one transaction that
//! first checks the load job is still running.

mod copy_binary;
mod postgres;
mod sqlite;

use conductor_core::LoadStatus;
use conductor_loader::WarehouseError;
use conductor_loader::star::{StarLayout, TableLayout, staging_name};
use conductor_loader::warehouse::{belongs_to, quote_identifier};

pub use self::postgres::PostgresWarehouse;
#[cfg(test)]
pub(crate) use self::sqlite::SQLITE_TRANSACTION_ROWS;
pub use self::sqlite::SqliteWarehouse;

pub(super) fn database(error: impl std::fmt::Display) -> WarehouseError {
    WarehouseError::Database(error.to_string())
}

/// `table`'s DDL: its columns, `primary_key` (one of them) marked, after a `leading` column of the caller's.
pub(super) fn create_table_sql(
    table: &TableLayout,
    primary_key: Option<&str>,
    leading: Option<&str>,
) -> String {
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

/// The staging tables' DDL; `fact_key` is the fact table's row-id column as the backend writes it (SQLite's
/// rowid, which the rows streamed in never name; on PostgreSQL a column the COPY numbers).
pub(super) fn create_staging_sql(layout: &StarLayout, fact_key: &str) -> String {
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

pub(super) fn drop_sql(tables: &[String]) -> String {
    tables
        .iter()
        .map(|t| format!("DROP TABLE IF EXISTS {}", quote_identifier(t)))
        .collect::<Vec<_>>()
        .join(";\n")
}

/// Statements joined into one script, leaving out empty ones.
pub(super) fn script(parts: &[String]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(";\n")
}

pub(super) fn column_list(table: &TableLayout) -> String {
    table
        .columns
        .iter()
        .map(|c| quote_identifier(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which of a package's tables to pick from a list of names.
#[derive(Clone, Copy)]
pub(super) enum Tables {
    /// The staging tables (`…__new`).
    Staging,
    /// The tables readers see.
    Current,
    /// Both.
    All,
}

/// The names in `names` that are `fact_table`'s package's tables of the kind asked for.
pub(super) fn package_tables(names: Vec<String>, fact_table: &str, kind: Tables) -> Vec<String> {
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

pub(super) fn is_terminal(status: &str) -> bool {
    status
        .parse::<LoadStatus>()
        .map(LoadStatus::is_terminal)
        .unwrap_or(true)
}

/// An error inside a diesel transaction (which must convert from diesel's own errors).
pub(super) struct InTransaction(pub(super) WarehouseError);

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
