//! The HTTP API, one `configure` per area.

pub mod datastore;
pub mod health;
pub mod oauth;
pub mod package;
pub mod pages;
pub mod search;
pub mod user;
