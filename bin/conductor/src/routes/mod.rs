//! The HTTP API, one `configure` per area.

pub mod health;
