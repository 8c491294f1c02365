//! Conductor's gateway: settings, wiring and the thin actix routes. Domain logic lives in the crates under
//! `crates/`; this crate only chooses adapters from the settings and maps results to HTTP.

pub mod cli;
pub mod error;
pub mod identity;
pub mod limits;
pub mod loading;
pub mod metrics;
pub mod middleware;
pub mod params;
pub mod routes;
pub mod search;
pub mod settings;
pub mod startup;
pub mod storage;
pub mod telemetry;

pub use settings::{Environment, Settings};
pub use startup::{Application, StartupError};
