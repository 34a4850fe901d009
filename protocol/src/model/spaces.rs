//! Wire types of communities, groups, channels and their members.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A member's role in a community, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommunityRole {
    Member,
    Moderator,
    Admin,
    Owner,
}

impl CommunityRole {
    pub fn to_db(self) -> i16 {
        self as i16
    }

    /// Unknown values read as the least privileged role.
    pub fn from_db(value: i16) -> Self {
        match value {
            3 => Self::Owner,
            2 => Self::Admin,
            1 => Self::Moderator,
            _ => Self::Member,
        }
    }

    /// Parses a role name from a form (`member`, `moderator`, `admin`; owner is transferred, not set).
    pub fn parse_assignable(name: &str) -> Option<Self> {
        match name {
            "member" => Some(Self::Member),
            "moderator" => Some(Self::Moderator),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// A text channel in a community group.
    Text,
    Dm,
    GroupDm,
    /// One person's own notes: only they are in it (their bookmarks and private notes live here,
    /// encrypted for their own devices). Not listed with the DMs.
    Notes,
}

impl ChannelKind {
    pub fn to_db(self) -> i16 {
        match self {
            Self::Text => 0,
            Self::Dm => 1,
            Self::GroupDm => 2,
            Self::Notes => 3,
        }
    }

    pub fn from_db(value: i16) -> Self {
        match value {
            1 => Self::Dm,
            2 => Self::GroupDm,
            3 => Self::Notes,
            _ => Self::Text,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSummary {
    pub id: Uuid,
    pub kind: ChannelKind,
    /// Empty for DMs and group DMs: clients name them after their members.
    pub name: String,
    /// For DMs and group DMs: everyone in it, the caller included.
    pub members: Vec<UserRef>,
    /// Whether people who join read what was sent before (community channels; moderators choose).
    #[serde(default)]
    pub history: HistoryVisibility,
    /// When the caller could first read this channel (RFC 3339): joining the community, being added
    /// to the private group, or to the DM. Messages sent before it were not encrypted for them
    /// unless the channel shares its history.
    #[serde(default)]
    pub since: Option<String>,
    /// Messages sent here disappear this many seconds later (none: they stay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disappear_after_s: Option<u32>,
}

/// The shortest and longest disappearing-message timers.
pub const MIN_DISAPPEAR_S: u32 = 3_600;
pub const MAX_DISAPPEAR_S: u32 = 30 * 86_400;

/// Who reads a channel's earlier messages. The server only keeps the setting: members' clients
/// share the room keys of earlier messages with newcomers when it is `Full`, and not otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryVisibility {
    /// Members read messages sent from when they joined (the default).
    #[default]
    Joined,
    /// Members read the whole history.
    Full,
}

impl HistoryVisibility {
    pub fn to_db(self) -> i16 {
        match self {
            Self::Joined => 0,
            Self::Full => 1,
        }
    }

    pub fn from_db(value: i16) -> Self {
        if value == 1 { Self::Full } else { Self::Joined }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSummary {
    pub id: Uuid,
    pub name: String,
    pub private: bool,
    pub channels: Vec<ChannelSummary>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommunitySummary {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub my_role: CommunityRole,
    /// Only the groups the caller can see.
    pub groups: Vec<GroupSummary>,
}

/// Everything the caller belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MySpaces {
    pub communities: Vec<CommunitySummary>,
    /// DMs and group DMs.
    pub direct: Vec<ChannelSummary>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user: UserRef,
    pub role: CommunityRole,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommunityInvite {
    pub code: String,
    pub community_id: Uuid,
    pub max_uses: Option<i32>,
    pub uses: i32,
    pub expires_at: Option<String>,
}
