//! `AppError`: the one error type that crosses the wire, shown by the UI's one error view.

use serde::{Deserialize, Serialize};

/// What went wrong, in terms a client can act on. Internal details never leave the server:
/// they are logged once under `ref_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AppError {
    /// A form field failed validation; `field` names the input it belongs to.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// The request is malformed (wrong content type, missing or undecodable arguments).
    #[error("bad request: {message}")]
    BadRequest { message: String },
    /// No valid session.
    #[error("please sign in")]
    Unauthenticated,
    /// Signed in, but not allowed.
    #[error("you are not allowed to do that")]
    Forbidden,
    #[error("not found")]
    NotFound,
    /// Too many attempts; try again after `retry_after_s` seconds.
    #[error("too many attempts; try again in {}", human_seconds(*retry_after_s))]
    RateLimited { retry_after_s: u64 },
    /// Something failed on the server; the operator can find it in the log by `ref_id`.
    #[error("something went wrong on the server (reference {ref_id})")]
    Internal { ref_id: String },
    /// The server could not be reached (client side only).
    #[error("could not reach the server: {message}")]
    Network { message: String },
}

impl AppError {
    /// A validation error for one form field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.to_owned(), message: message.into() }
    }

    /// The HTTP status this error is sent with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid { .. } => 422,
            Self::BadRequest { .. } => 400,
            Self::Unauthenticated => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::RateLimited { .. } => 429,
            Self::Internal { .. } => 500,
            Self::Network { .. } => 503,
        }
    }

    /// The message for `field`, if this error belongs to that form field.
    pub fn for_field(&self, name: &str) -> Option<String> {
        match self {
            Self::Invalid { field, message } if field == name => Some(message.clone()),
            _ => None,
        }
    }

    /// Whether this error belongs to a form field (and so is shown next to it, not in a banner).
    pub fn is_field_error(&self) -> bool {
        matches!(self, Self::Invalid { .. })
    }
}

fn human_seconds(s: u64) -> String {
    match s {
        0..=90 => format!("{s} s"),
        _ => format!("{} min", s.div_ceil(60)),
    }
}

#[cfg(feature = "server-fn")]
mod server_fn_error {
    use super::AppError;
    use server_fn::{
        codec::JsonEncoding,
        error::{FromServerFnError, ServerFnErrorErr},
    };

    impl FromServerFnError for AppError {
        type Encoder = JsonEncoding;

        fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
            match value {
                ServerFnErrorErr::Request(message) => Self::Network { message },
                ServerFnErrorErr::Args(message)
                | ServerFnErrorErr::MissingArg(message)
                | ServerFnErrorErr::Deserialization(message)
                | ServerFnErrorErr::Serialization(message)
                | ServerFnErrorErr::UnsupportedRequestMethod(message) => Self::BadRequest { message },
                ServerFnErrorErr::Registration(_)
                | ServerFnErrorErr::ServerError(_)
                | ServerFnErrorErr::MiddlewareError(_)
                | ServerFnErrorErr::Response(_) => Self::BadRequest { message: value.to_string() },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_tagged_and_stable() {
        let e = AppError::invalid("username", "is taken");
        let json = serde_json_like(&e);
        assert_eq!(json, r#"{"kind":"invalid","field":"username","message":"is taken"}"#);
        assert_eq!(
            serde_json_like(&AppError::RateLimited { retry_after_s: 30 }),
            r#"{"kind":"rate_limited","retry_after_s":30}"#
        );
    }

    #[test]
    fn statuses_and_messages() {
        assert_eq!(AppError::Unauthenticated.status(), 401);
        assert_eq!(AppError::invalid("password", "too short").status(), 422);
        assert_eq!(AppError::RateLimited { retry_after_s: 30 }.to_string(), "too many attempts; try again in 30 s");
        assert_eq!(AppError::RateLimited { retry_after_s: 900 }.to_string(), "too many attempts; try again in 15 min");
        assert_eq!(AppError::invalid("username", "x").for_field("username").as_deref(), Some("x"));
        assert_eq!(AppError::invalid("username", "x").for_field("password"), None);
    }

    #[cfg(feature = "server-fn")]
    #[test]
    fn framework_errors_become_bad_requests() {
        use server_fn::error::{FromServerFnError, ServerFnErrorErr};
        let e = AppError::from_server_fn_error(ServerFnErrorErr::MissingArg("password".into()));
        assert_eq!(e.status(), 400);
    }

    /// The JSON a server function's error body carries (`JsonEncoding` is serde_json).
    fn serde_json_like(e: &AppError) -> String {
        serde_json::to_string(e).unwrap()
    }
}
