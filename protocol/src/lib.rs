//! The wire: everything that crosses between the browser, the server and other nodes. Wire types
//! (`model`, including the `/ws` protocol), the one error type (`AppError`) and the input rules both
//! sides apply (`validation`). A leaf crate: it knows no database, no HTTP and no UI.

pub mod error;
pub mod model;
pub mod validation;

pub use error::AppError;

/// The names of the cookies that carry a browser's session: part of the contract with every
/// client that signs in over HTTP (the browser, the desktop app, tests).
pub mod cookies {
    /// The short-lived access token (an EdDSA JWT).
    pub const ACCESS: &str = "chatalot_at";
    /// The refresh token, rotated on every use.
    pub const REFRESH: &str = "chatalot_rt";
    /// Marks a browser that signed in before (sign-in throttling per device).
    pub const DEVICE: &str = "chatalot_dev";
    /// Carries a freshly issued recovery code to the one page that shows it.
    pub const RECOVERY_FLASH: &str = "chatalot_rc";
}
