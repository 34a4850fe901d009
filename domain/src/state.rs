//! `Core`: what every command and query can reach. Built once at start-up and passed by reference;
//! never global.

use super::{config::Config, keys::Keys, password::Passwords, realtime::Realtime};
use sea_orm::DatabaseConnection;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct Core {
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    pub keys: Arc<Keys>,
    pub passwords: Passwords,
    /// This node's sockets and the bus to the other nodes.
    pub realtime: Realtime,
}

impl Core {
    /// Whether the database answers within three seconds (`/healthz`).
    pub async fn database_ok(&self) -> bool {
        tokio::time::timeout(std::time::Duration::from_secs(3), self.db.ping()).await.is_ok_and(|r| r.is_ok())
    }
}
