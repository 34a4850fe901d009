//! The wire: everything that crosses between the browser, the server and other nodes. Wire types
//! (`model`, including the `/ws` protocol), the one error type (`AppError`) and the input rules both
//! sides apply (`validation`). A leaf crate: it knows no database, no HTTP and no UI.

pub mod error;
pub mod model;
pub mod validation;

pub use error::AppError;
