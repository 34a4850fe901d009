//! A message: an opaque, end-to-end-encrypted envelope. The server never parses `ciphertext`.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub channel_id: Uuid,
    /// The sequence number of the event that created it.
    pub seq: i64,
    pub sender_id: Uuid,
    pub sender_device: String,
    /// Chosen by the sender; a retried send with the same id returns the original.
    pub client_txn: String,
    pub kind: i16,
    pub reply_to: Option<Uuid>,
    /// In a thread: its root (a message of the same channel, not itself in a thread).
    pub thread_id: Option<Uuid>,
    /// For a thread's root: its replies (not deleted), and the latest one's sequence number and time.
    pub thread_replies: i32,
    pub thread_last_seq: Option<i64>,
    pub thread_last_at: Option<DateTimeUtc>,
    /// Empty once deleted.
    #[sea_orm(column_type = "Blob")]
    pub ciphertext: Vec<u8>,
    pub created_at: DateTimeUtc,
    pub edited_at: Option<DateTimeUtc>,
    pub deleted_at: Option<DateTimeUtc>,
    /// Sent while its channel had a disappearing-message timer: erased at this time.
    pub expires_at: Option<DateTimeUtc>,
}

/// Ciphertext is never printed.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("channel_id", &self.channel_id)
            .field("seq", &self.seq)
            .field("sender_id", &self.sender_id)
            .field("ciphertext", &format_args!("<{} bytes>", self.ciphertext.len()))
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
