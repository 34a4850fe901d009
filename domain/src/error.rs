//! `ServerError`: everything that can fail on the server. Domain errors pass through to the client
//! as they are; everything else is logged once with a reference id and reaches the client as
//! `AppError::Internal { ref_id }`.

use protocol::AppError;
use sea_orm::DbErr;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("token signing failed: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

pub type ServerResult<T> = Result<T, ServerError>;

impl From<ServerError> for AppError {
    fn from(err: ServerError) -> Self {
        match err {
            ServerError::App(app) => app,
            other => {
                let ref_id = new_ref_id();
                tracing::error!(%ref_id, error = %other, "internal error");
                AppError::Internal { ref_id }
            }
        }
    }
}

/// A short random id that ties a client-visible error to one log line.
pub fn new_ref_id() -> String {
    let bytes: [u8; 6] = rand::random();
    hex::encode(bytes)
}

/// Whether a database error is a unique-constraint violation (on either backend).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// Whether a database error is transient contention worth one retry (SQLite busy/locked, Postgres
/// serialization failures).
pub fn is_contention(err: &DbErr) -> bool {
    let text = err.to_string();
    text.contains("database is locked") || text.contains("SQLITE_BUSY") || text.contains("could not serialize")
}
