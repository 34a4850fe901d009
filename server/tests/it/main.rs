//! The server's integration tests, one module per area, in one test binary: linking the server
//! once instead of once per file saves most of the time a change takes to test on two cores.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

mod accounts;
mod authz;
mod backup;
mod binary;
mod cluster;
mod connections;
mod contention;
mod deploy;
mod e2ee;
mod gateway;
mod http;
mod keys;
mod messages;
mod snapshot;
mod spaces;
