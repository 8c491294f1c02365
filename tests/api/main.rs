//! HTTP tests against the real gateway, once per backend. One test binary, so linking stays cheap.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure fails the test"
)]

mod browser;
mod clients;
mod contract;
mod datastore;
mod delete;
mod docs_pages;
mod gateway;
mod hardening;
mod interop;
mod keys;
mod logging;
mod oidc;
mod older;
mod package;
mod postgres_outage;
mod reload;
mod search;
mod user;
