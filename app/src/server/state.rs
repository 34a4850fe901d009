//! `AppState`: what every request handler and server function can reach.

use super::{config::Config, keys::Keys, password::Passwords, realtime::Realtime};
use leptos::config::LeptosOptions;
use sea_orm::DatabaseConnection;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    pub keys: Arc<Keys>,
    pub passwords: Passwords,
    pub leptos: LeptosOptions,
    /// This node's sockets and the bus to the other nodes.
    pub realtime: Realtime,
}

impl axum::extract::FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

/// The state, from inside a server function or a component rendered on the server.
pub fn app_state() -> Result<AppState, crate::error::AppError> {
    leptos::prelude::use_context::<AppState>().ok_or_else(|| {
        let ref_id = super::error::new_ref_id();
        tracing::error!(%ref_id, "AppState missing from the server function context");
        crate::error::AppError::Internal { ref_id }
    })
}
