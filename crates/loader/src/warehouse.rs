//! The port the loader writes tables through. Adapters (in `conductor-store`): PostgreSQL with COPY, SQLite with
//! batched inserts. Every load writes into staging tables (`T__new`, `T_<i>__new`) that one transaction swaps in,
//! so a reader sees the old tables or the new ones, never a mix, nothing, or half a load.

use crate::star::StarLayout;
use crate::values::Cell;

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("database: {0}")]
    Database(String),
    /// The database could not be reached or dropped the connection (a restart, a failover).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The feed stopped the load (a bad value, a lost job); the feed knows why.
    #[error("the load was stopped")]
    Stopped,
    /// The job was failed by another worker (its heartbeat stopped) before the swap; nothing was swapped.
    #[error("the load job was ended elsewhere before its tables were swapped in")]
    JobEnded,
}

/// Where rows go.
pub trait RowSink {
    fn row(&mut self, cells: &[Cell]) -> Result<(), WarehouseError>;
}

/// Where rows come from: the fact rows first (streamed), then each dimension's distinct rows.
pub trait StagingFeed {
    fn facts(&mut self, sink: &mut dyn RowSink) -> Result<(), WarehouseError>;
    fn dimension(&mut self, index: usize, sink: &mut dyn RowSink) -> Result<(), WarehouseError>;
}

/// Blocking: the loader calls it from a thread of its own.
pub trait Warehouse: Send + Sync {
    /// (Re)creates the staging tables of `layout` and fills them from `feed`. On any error the staging tables are
    /// dropped again.
    fn stage(&self, layout: &StarLayout, feed: &mut dyn StagingFeed) -> Result<(), WarehouseError>;
    /// In one transaction: checks that load job `job_id` is still running (so a job another replica failed never
    /// swaps), drops the package's current tables (also dimension tables a previous version had beyond this
    /// one's), and renames the staging tables into place.
    fn swap(&self, layout: &StarLayout, job_id: i64) -> Result<(), WarehouseError>;
    /// Drops the staging tables of the package whose fact table is `fact_table`, if any.
    fn drop_staging(&self, fact_table: &str) -> Result<(), WarehouseError>;
    /// Drops every table of the package whose fact table is `fact_table`.
    fn drop_tables(&self, fact_table: &str) -> Result<(), WarehouseError>;
    /// Rows in `table`.
    fn count_rows(&self, table: &str) -> Result<i64, WarehouseError>;
    /// The tables whose name starts with `prefix` (what a package has left in the database).
    fn tables_with_prefix(&self, prefix: &str) -> Result<Vec<String>, WarehouseError>;
}

/// Whether `name` is one of the tables of the package whose fact table is `fact_table` (`T`, `T_<i>`, and their
/// staging names), so adapters never touch another package's tables.
pub fn belongs_to(name: &str, fact_table: &str) -> bool {
    let Some(rest) = name.strip_prefix(fact_table) else {
        return false;
    };
    let rest = rest.strip_suffix("__new").unwrap_or(rest);
    rest.is_empty()
        || rest
            .strip_prefix('_')
            .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
}

/// Quotes an identifier for SQL (both backends use double quotes). Table and column names are ours (hex table
/// names, slugged column names), so this is belt and braces.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_belong_to_their_package_only() {
        let t = "583b10ad15f2e7f078afd3431c2c09ea1a79a4d60de6718e";
        for own in ["", "_0", "_12", "__new", "_3__new"] {
            assert!(belongs_to(&format!("{t}{own}"), t), "{own}");
        }
        for other in ["_", "_x", "0", "_0_1", "__old", "_0__new__new"] {
            assert!(!belongs_to(&format!("{t}{other}"), t), "{other}");
        }
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }
}
