//! Conductor's gateway: settings, wiring and the thin actix routes. Domain logic lives in the crates under
//! `crates/`; this crate only chooses adapters from the settings and maps results to HTTP.
//!
//! Floors, each importing only from the ones below it: `settings`, `error`, `metrics`, `telemetry` (ground);
//! `services` (one per domain crate, built from the settings) and `params`; `credentials`; `routes`; `middleware`, then `limits`;
//! `startup` (binds the listener and wires the services into the routes); `cli`; `main`.

pub mod cli;
pub mod credentials;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod middleware;
pub mod params;
pub mod routes;
pub mod services;
pub mod settings;
pub mod startup;
pub mod telemetry;

pub use settings::{Environment, Settings};
pub use startup::{Application, StartupError};
