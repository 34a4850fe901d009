//! The test kit: what server tests, browser tests and the benchmark all need, written once.
//! Dev-only: no shipped crate depends on it.
//!
//! - [`db`]: a fresh, empty database per test: SQLite in a temporary directory, or a new
//!   PostgreSQL database created through `TEST_DATABASE_URL` and dropped afterwards; and
//!   [`on_both_backends!`], which runs a test body on each.
//! - [`users`]: accounts and devices inserted directly (no password hashing), and session cookies.
//! - [`process`]: the real server binary on a free port, waited for until healthy, killed on drop.
//! - [`ws`]: a `/ws` client that speaks the gateway protocol.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap here is a failed test

pub mod db;
pub mod process;
pub mod users;
pub mod ws;

pub use db::TestDb;
pub use users::{TestDevice, new_user, session_cookie, with_device};
