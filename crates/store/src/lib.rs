//! Conductor's persistence: the repository ports of `conductor-core`, implemented with diesel for PostgreSQL and
//! SQLite, pooled with r2d2.
//!
//! Both backends share one schema and one source of queries: the adapters are written once, in
//! [`repositories`], and instantiated for each connection type. Every blocking diesel call runs on tokio's
//! blocking pool, never on an executor thread.

#[cfg(test)]
mod contract;
#[cfg(test)]
mod contract_api_keys;
#[cfg(test)]
mod contract_turns;
mod database;
mod error;
#[cfg(feature = "redis")]
pub mod redis_cache;
#[cfg(feature = "redis")]
pub mod redis_rates;
mod repositories;
mod rows;
mod schema;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod warehouse;
mod write_turn;

pub use database::{Backend, Database, DatabaseUrl, Repositories};
pub use error::{Result, StoreError};
pub use warehouse::{PostgresWarehouse, SqliteWarehouse};
