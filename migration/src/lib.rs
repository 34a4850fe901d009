//! The database schema, as append-only migrations.
//!
//! Migrations describe the schema as it was when they were written, so they never import `entity`;
//! a migration that has shipped is never edited, only followed by a new one.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_accounts;
mod m20261126_000002_spaces;
mod m20261126_000003_messages;
mod m20261126_000004_keys;
mod m20261126_000005_read_cursors;
mod m20261126_000006_presence_suspension;
mod m20261127_000007_key_backup;
mod m20261127_000008_channel_history;
mod m20261127_000009_cross_signing;
mod m20261207_000010_reactions;
mod m20261207_000011_pins;
mod m20261207_000012_read_receipts;
mod m20261207_000013_scheduled_messages;
mod m20261208_000014_threads;
mod m20261208_000015_disappearing;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_accounts::Migration),
            Box::new(m20261126_000002_spaces::Migration),
            Box::new(m20261126_000003_messages::Migration),
            Box::new(m20261126_000004_keys::Migration),
            Box::new(m20261126_000005_read_cursors::Migration),
            Box::new(m20261126_000006_presence_suspension::Migration),
            Box::new(m20261127_000007_key_backup::Migration),
            Box::new(m20261127_000008_channel_history::Migration),
            Box::new(m20261127_000009_cross_signing::Migration),
            Box::new(m20261207_000010_reactions::Migration),
            Box::new(m20261207_000011_pins::Migration),
            Box::new(m20261207_000012_read_receipts::Migration),
            Box::new(m20261207_000013_scheduled_messages::Migration),
            Box::new(m20261208_000014_threads::Migration),
            Box::new(m20261208_000015_disappearing::Migration),
        ]
    }
}
