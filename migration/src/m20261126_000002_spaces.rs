//! Spaces: communities, their members, bans and invites; groups; channels (community text
//! channels, DMs and group DMs) and the participants of DMs and group DMs.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Communities::Table)
                .col(pk_uuid(Communities::Id))
                .col(string_len(Communities::Name, 64))
                .col(string_len(Communities::Description, 2048).default(""))
                .col(uuid(Communities::CreatedBy))
                .col(timestamp_with_time_zone(Communities::CreatedAt))
                .foreign_key(&mut fk(
                    Communities::Table,
                    Communities::CreatedBy,
                    Users::Table,
                    Users::Id,
                    ForeignKeyAction::Restrict,
                ))
                .to_owned(),
        )
        .await?;

        // role: 0 member, 1 moderator, 2 admin, 3 owner.
        m.create_table(
            Table::create()
                .table(CommunityMembers::Table)
                .col(uuid(CommunityMembers::CommunityId))
                .col(uuid(CommunityMembers::UserId))
                .col(small_integer(CommunityMembers::Role))
                .col(timestamp_with_time_zone(CommunityMembers::JoinedAt))
                .primary_key(Index::create().col(CommunityMembers::CommunityId).col(CommunityMembers::UserId))
                .foreign_key(&mut fk(
                    CommunityMembers::Table,
                    CommunityMembers::CommunityId,
                    Communities::Table,
                    Communities::Id,
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    CommunityMembers::Table,
                    CommunityMembers::UserId,
                    Users::Table,
                    Users::Id,
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_community_members_user")
                .table(CommunityMembers::Table)
                .col(CommunityMembers::UserId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(CommunityBans::Table)
                .col(uuid(CommunityBans::CommunityId))
                .col(uuid(CommunityBans::UserId))
                .col(uuid(CommunityBans::BannedBy))
                .col(string_len(CommunityBans::Reason, 500).default(""))
                .col(timestamp_with_time_zone(CommunityBans::CreatedAt))
                .primary_key(Index::create().col(CommunityBans::CommunityId).col(CommunityBans::UserId))
                .foreign_key(&mut fk(
                    CommunityBans::Table,
                    CommunityBans::CommunityId,
                    Communities::Table,
                    Communities::Id,
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    CommunityBans::Table,
                    CommunityBans::UserId,
                    Users::Table,
                    Users::Id,
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    CommunityBans::Table,
                    CommunityBans::BannedBy,
                    Users::Table,
                    Users::Id,
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(CommunityInvites::Table)
                .col(pk_uuid(CommunityInvites::Id))
                .col(uuid(CommunityInvites::CommunityId))
                .col(string_len_uniq(CommunityInvites::Code, 16))
                .col(uuid(CommunityInvites::CreatedBy))
                .col(integer_null(CommunityInvites::MaxUses))
                .col(integer(CommunityInvites::Uses).default(0))
                .col(timestamp_with_time_zone_null(CommunityInvites::ExpiresAt))
                .col(timestamp_with_time_zone(CommunityInvites::CreatedAt))
                .foreign_key(&mut fk(
                    CommunityInvites::Table,
                    CommunityInvites::CommunityId,
                    Communities::Table,
                    Communities::Id,
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    CommunityInvites::Table,
                    CommunityInvites::CreatedBy,
                    Users::Table,
                    Users::Id,
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;

        // Public groups have no member rows: every community member is in them.
        m.create_table(
            Table::create()
                .table(Groups::Table)
                .col(pk_uuid(Groups::Id))
                .col(uuid(Groups::CommunityId))
                .col(string_len(Groups::Name, 64))
                .col(boolean(Groups::Private))
                .col(uuid(Groups::CreatedBy))
                .col(timestamp_with_time_zone(Groups::CreatedAt))
                .foreign_key(&mut fk(
                    Groups::Table,
                    Groups::CommunityId,
                    Communities::Table,
                    Communities::Id,
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    Groups::Table,
                    Groups::CreatedBy,
                    Users::Table,
                    Users::Id,
                    ForeignKeyAction::Restrict,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("idx_groups_community").table(Groups::Table).col(Groups::CommunityId).to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(GroupMembers::Table)
                .col(uuid(GroupMembers::GroupId))
                .col(uuid(GroupMembers::UserId))
                .col(timestamp_with_time_zone(GroupMembers::AddedAt))
                .primary_key(Index::create().col(GroupMembers::GroupId).col(GroupMembers::UserId))
                .foreign_key(&mut fk(
                    GroupMembers::Table,
                    GroupMembers::GroupId,
                    Groups::Table,
                    Groups::Id,
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    GroupMembers::Table,
                    GroupMembers::UserId,
                    Users::Table,
                    Users::Id,
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;

        // kind: 0 community text channel (group_id set), 1 DM, 2 group DM (participants in channel_members).
        m.create_table(
            Table::create()
                .table(Channels::Table)
                .col(pk_uuid(Channels::Id))
                .col(small_integer(Channels::Kind))
                .col(uuid_null(Channels::GroupId))
                .col(string_len(Channels::Name, 64).default(""))
                .col(big_integer(Channels::LastSeq).default(0))
                .col(uuid(Channels::CreatedBy))
                .col(timestamp_with_time_zone(Channels::CreatedAt))
                .foreign_key(&mut fk(
                    Channels::Table,
                    Channels::GroupId,
                    Groups::Table,
                    Groups::Id,
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    Channels::Table,
                    Channels::CreatedBy,
                    Users::Table,
                    Users::Id,
                    ForeignKeyAction::Restrict,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("idx_channels_group").table(Channels::Table).col(Channels::GroupId).to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ChannelMembers::Table)
                .col(uuid(ChannelMembers::ChannelId))
                .col(uuid(ChannelMembers::UserId))
                .col(timestamp_with_time_zone(ChannelMembers::JoinedAt))
                .primary_key(Index::create().col(ChannelMembers::ChannelId).col(ChannelMembers::UserId))
                .foreign_key(&mut fk(
                    ChannelMembers::Table,
                    ChannelMembers::ChannelId,
                    Channels::Table,
                    Channels::Id,
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    ChannelMembers::Table,
                    ChannelMembers::UserId,
                    Users::Table,
                    Users::Id,
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_channel_members_user")
                .table(ChannelMembers::Table)
                .col(ChannelMembers::UserId)
                .to_owned(),
        )
        .await?;

        // One DM channel per pair of users (user_low < user_high), race-free by its primary key.
        m.create_table(
            Table::create()
                .table(DmPairs::Table)
                .col(uuid(DmPairs::UserLow))
                .col(uuid(DmPairs::UserHigh))
                .col(uuid_uniq(DmPairs::ChannelId))
                .primary_key(Index::create().col(DmPairs::UserLow).col(DmPairs::UserHigh))
                .foreign_key(&mut fk(
                    DmPairs::Table,
                    DmPairs::ChannelId,
                    Channels::Table,
                    Channels::Id,
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await
    }
}

fn fk<T: IntoIden + 'static, C: IntoIden + 'static, R: IntoIden + 'static, RC: IntoIden + 'static>(
    table: T,
    col: C,
    ref_table: R,
    ref_col: RC,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(table, col).to(ref_table, ref_col).on_delete(on_delete).to_owned()
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Communities {
    Table,
    Id,
    Name,
    Description,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum CommunityMembers {
    Table,
    CommunityId,
    UserId,
    Role,
    JoinedAt,
}

#[derive(DeriveIden)]
enum CommunityBans {
    Table,
    CommunityId,
    UserId,
    BannedBy,
    Reason,
    CreatedAt,
}

#[derive(DeriveIden)]
enum CommunityInvites {
    Table,
    Id,
    CommunityId,
    Code,
    CreatedBy,
    MaxUses,
    Uses,
    ExpiresAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Groups {
    Table,
    Id,
    CommunityId,
    Name,
    Private,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum GroupMembers {
    Table,
    GroupId,
    UserId,
    AddedAt,
}

#[derive(DeriveIden)]
enum Channels {
    Table,
    Id,
    Kind,
    GroupId,
    Name,
    LastSeq,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ChannelMembers {
    Table,
    ChannelId,
    UserId,
    JoinedAt,
}

#[derive(DeriveIden)]
enum DmPairs {
    Table,
    UserLow,
    UserHigh,
    ChannelId,
}
