//! Accounts: users, refresh-token families, registration invites and the login throttle.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(pk_uuid(Users::Id))
                .col(string_len(Users::Username, 32))
                // Lower-cased username: uniqueness is case-insensitive on every backend.
                .col(string_len_uniq(Users::UsernameKey, 32))
                .col(string_len(Users::DisplayName, 64))
                .col(string(Users::PasswordHash))
                .col(string(Users::RecoveryCodeHash))
                // 1 for the instance owner, NULL for everyone else. The unique index admits many NULLs
                // but only one 1, so two racing first registrations cannot both become owner.
                .col(small_integer_null(Users::OwnerSlot).unique_key())
                .col(boolean(Users::IsAdmin).default(false))
                .col(timestamp_with_time_zone(Users::CreatedAt))
                .col(timestamp_with_time_zone(Users::PasswordChangedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RefreshTokens::Table)
                .col(pk_uuid(RefreshTokens::Id))
                .col(uuid(RefreshTokens::UserId))
                .col(uuid(RefreshTokens::FamilyId))
                .col(string_len_uniq(RefreshTokens::TokenHash, 64))
                .col(timestamp_with_time_zone(RefreshTokens::CreatedAt))
                .col(timestamp_with_time_zone(RefreshTokens::ExpiresAt))
                .col(timestamp_with_time_zone_null(RefreshTokens::RotatedAt))
                .col(timestamp_with_time_zone_null(RefreshTokens::RevokedAt))
                .col(string_len_null(RefreshTokens::UserAgent, 256))
                .foreign_key(
                    ForeignKey::create()
                        .from(RefreshTokens::Table, RefreshTokens::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_refresh_tokens_family")
                .table(RefreshTokens::Table)
                .col(RefreshTokens::FamilyId)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_refresh_tokens_user")
                .table(RefreshTokens::Table)
                .col(RefreshTokens::UserId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RegistrationInvites::Table)
                .col(pk_uuid(RegistrationInvites::Id))
                .col(string_len_uniq(RegistrationInvites::Code, 32))
                .col(uuid(RegistrationInvites::CreatedBy))
                .col(integer_null(RegistrationInvites::MaxUses))
                .col(integer(RegistrationInvites::Uses).default(0))
                .col(timestamp_with_time_zone_null(RegistrationInvites::ExpiresAt))
                .col(timestamp_with_time_zone(RegistrationInvites::CreatedAt))
                .col(timestamp_with_time_zone_null(RegistrationInvites::RevokedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(RegistrationInvites::Table, RegistrationInvites::CreatedBy)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;

        // Fixed-window failure counters, shared by every server node (keys such as `ip:…`, `acct:…`).
        m.create_table(
            Table::create()
                .table(AuthThrottle::Table)
                .col(string_len(AuthThrottle::Key, 128).primary_key())
                .col(timestamp_with_time_zone(AuthThrottle::WindowStart))
                .col(integer(AuthThrottle::Failures))
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    UsernameKey,
    DisplayName,
    PasswordHash,
    RecoveryCodeHash,
    OwnerSlot,
    IsAdmin,
    CreatedAt,
    PasswordChangedAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    UserId,
    FamilyId,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    RotatedAt,
    RevokedAt,
    UserAgent,
}

#[derive(DeriveIden)]
enum RegistrationInvites {
    Table,
    Id,
    Code,
    CreatedBy,
    MaxUses,
    Uses,
    ExpiresAt,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum AuthThrottle {
    Table,
    Key,
    WindowStart,
    Failures,
}
