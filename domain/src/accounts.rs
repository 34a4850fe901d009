//! Account services: registration, login, recovery, and the current user.

use super::{
    error::{ServerError, ServerResult, is_contention, is_unique_violation},
    invites, policy,
    realtime::Signal,
    session::Session,
    state::Core,
    throttle::{self, Limit},
    tokens::{self, DeviceCookie},
};
use chrono::{Duration, Utc};
use entity::user::{self, Column};
use protocol::{
    error::AppError,
    model::{Me, RegistrationMode},
    validation,
};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use std::net::IpAddr;
use uuid::Uuid;

/// What the server knows about the client making an attempt.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// A valid device cookie presented with the request.
    pub device: Option<DeviceCookie>,
}

impl Client {
    fn ip_key(&self, prefix: &str) -> String {
        format!(
            "{prefix}:ip:{}",
            self.ip.map_or_else(|| "unknown".to_owned(), |ip| throttle::address_of(ip).to_string())
        )
    }

    /// The client's network (see [`throttle::network_of`]), as a key part.
    fn network(&self) -> String {
        self.ip.map_or_else(|| "unknown".to_owned(), |ip| throttle::network_of(ip).to_string())
    }
}

/// Sign-in failures one address, and one network, may have per window, over every account.
const LOGIN_IP_MAX: i32 = 30;
const LOGIN_NETWORK_MAX: i32 = 100;
const LOGIN_WINDOW: Duration = Duration::minutes(15);
/// Sign-in failures on one account from one network per hour (or from one browser that has
/// signed in to it before). Counted per network, so that nobody elsewhere is locked out: a new
/// address in another network always gets its attempts.
const LOGIN_ACCOUNT_MAX: i32 = 10;
const LOGIN_ACCOUNT_WINDOW: Duration = Duration::hours(1);
/// Recovery failures per hour: from one address, one network, and on one account from one network.
const RECOVER_MAX: i32 = 10;
const RECOVER_NETWORK_MAX: i32 = 30;
/// Registration attempts (each one tries an invite code) per hour from one address and one network.
const REGISTER_IP_MAX: i32 = 20;
const REGISTER_NETWORK_MAX: i32 = 60;
const HOUR: Duration = Duration::hours(1);

/// The 32-character alphabet of recovery and invite codes (no I, O, 0, 1).
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// `groups` groups of four random characters, joined by dashes.
pub fn random_code(groups: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..groups)
        .map(|_| (0..4).map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char).collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Upper-case, without dashes or spaces: how codes are compared.
pub fn normalize_code(code: &str) -> String {
    code.chars().filter(|c| !matches!(c, '-' | ' ')).flat_map(char::to_uppercase).collect()
}

fn hash_recovery_code(code: &str) -> String {
    tokens::sha256_hex(&normalize_code(code))
}

pub fn to_me(u: &user::Model) -> Me {
    Me {
        id: u.id,
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        is_owner: u.is_owner(),
        is_admin: u.is_admin,
        read_receipts: u.read_receipts,
    }
}

/// The signed-in user, or `None` when the session is missing, ended or suspended.
pub async fn me(core: &Core, session: Option<Session>) -> ServerResult<Option<Me>> {
    match current(core, session).await {
        Ok(user) => Ok(Some(to_me(&user))),
        Err(super::error::ServerError::App(AppError::Unauthenticated)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn field(name: &str, result: Result<(), String>) -> Result<(), AppError> {
    result.map_err(|m| AppError::invalid(name, m))
}

pub struct Registration {
    pub username: String,
    pub display_name: String,
    pub password: String,
    pub invite_code: Option<String>,
}

pub struct Registered {
    pub user: user::Model,
    /// Shown to the user once; only its hash is stored.
    pub recovery_code: String,
}

/// Whether the instance has no account yet (the next registration becomes the owner).
pub async fn is_empty(core: &Core) -> ServerResult<bool> {
    Ok(user::Entity::find().count(&core.db).await? == 0)
}

pub async fn register(core: &Core, input: Registration, client: &Client) -> ServerResult<Registered> {
    let username = input.username.trim().to_owned();
    let display_name = input.display_name.trim().to_owned();
    field("username", validation::username(&username))?;
    field("display_name", validation::display_name(&display_name))?;
    field("password", validation::password(&input.password))?;
    let invite_code = input.invite_code.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
    if invite_code.as_ref().is_some_and(|c| c.len() > validation::MAX_CODE_LEN) {
        return Err(AppError::invalid("invite_code", "is too long").into());
    }

    let now = Utc::now();
    let limits = [
        Limit::new(client.ip_key("register"), REGISTER_IP_MAX, HOUR),
        Limit::new(format!("register:net:{}", client.network()), REGISTER_NETWORK_MAX, HOUR),
    ];
    throttle::take(&core.db, &limits, now).await?; // every attempt counts, atomically

    // Whether this person may register at all comes first: someone without a usable invite learns
    // nothing about which usernames exist. (The code is used up when the account is committed.)
    if !is_empty(core).await? {
        may_register(core.config.registration_mode, invite_code.as_deref(), async |code| {
            invites::is_usable(&core.db, code, now).await
        })
        .await?;
    }
    let key = username.to_lowercase();
    if user::Entity::find().filter(Column::UsernameKey.eq(&key)).one(&core.db).await?.is_some() {
        return Err(AppError::invalid("username", "is already taken").into());
    }
    let password_hash = core.passwords.hash(input.password).await?;
    let recovery_code = random_code(4);

    let mut attempt = 0;
    loop {
        let result = try_insert_user(
            core,
            &username,
            &key,
            &display_name,
            &password_hash,
            &recovery_code,
            invite_code.as_deref(),
        )
        .await;
        match result {
            Ok(user) => {
                if user.is_owner() {
                    tracing::info!(user = %user.id, "the first account was created and owns this instance");
                }
                return Ok(Registered { user, recovery_code });
            }
            // Lost a race: for the owner slot, for the username, or for SQLite's write lock.
            Err(ServerError::Db(e)) if attempt < 2 && (is_unique_violation(&e) || is_contention(&e)) => {
                attempt += 1;
                if user::Entity::find().filter(Column::UsernameKey.eq(&key)).one(&core.db).await?.is_some() {
                    return Err(AppError::invalid("username", "is already taken").into());
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether a registration may go ahead under `mode` (the first account always may): `accept`
/// says whether the invite code is usable, or uses it up.
async fn may_register(
    mode: RegistrationMode,
    invite_code: Option<&str>,
    accept: impl AsyncFnOnce(&str) -> ServerResult<bool>,
) -> ServerResult<()> {
    match mode {
        RegistrationMode::Open => Ok(()),
        RegistrationMode::Closed => Err(AppError::invalid("form", "Registration is closed on this instance.").into()),
        RegistrationMode::InviteOnly => {
            let Some(code) = invite_code else {
                return Err(AppError::invalid("invite_code", "An invite code is required to register here.").into());
            };
            if accept(code).await? {
                Ok(())
            } else {
                Err(AppError::invalid(
                    "invite_code",
                    "This invite code is not valid (unknown, used up, expired or revoked).",
                )
                .into())
            }
        }
    }
}

async fn try_insert_user(
    core: &Core,
    username: &str,
    key: &str,
    display_name: &str,
    password_hash: &str,
    recovery_code: &str,
    invite_code: Option<&str>,
) -> ServerResult<user::Model> {
    let txn = crate::db::begin_write(&core.db).await?;
    let first = user::Entity::find().count(&txn).await? == 0;
    if !first {
        may_register(core.config.registration_mode, invite_code, async |code| {
            invites::consume(&txn, code, Utc::now()).await
        })
        .await?;
    }
    let now = Utc::now();
    let user = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        username: Set(username.to_owned()),
        username_key: Set(key.to_owned()),
        display_name: Set(display_name.to_owned()),
        password_hash: Set(password_hash.to_owned()),
        recovery_code_hash: Set(hash_recovery_code(recovery_code)),
        owner_slot: Set(first.then_some(1)),
        is_admin: Set(first),
        created_at: Set(now),
        password_changed_at: Set(now),
        suspended_at: Set(None),
        presence: Set(0),
        read_receipts: Set(true),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(user)
}

pub struct LoggedIn {
    pub user: user::Model,
    /// A device cookie to set, if the browser did not already carry one for this account.
    pub new_device: Option<DeviceCookie>,
}

const BAD_LOGIN: &str = "Wrong username or password.";

pub async fn login(core: &Core, username: &str, password: String, client: &Client) -> ServerResult<LoggedIn> {
    if username.is_empty() {
        return Err(AppError::invalid("username", "is required").into());
    }
    if password.is_empty() {
        return Err(AppError::invalid("password", "is required").into());
    }
    if username.chars().count() > 64 || password.chars().count() > 1024 {
        return Err(AppError::invalid("password", BAD_LOGIN).into());
    }
    let key = username.trim().to_lowercase();
    let user = user::Entity::find().filter(Column::UsernameKey.eq(&key)).one(&core.db).await?;
    let known_device = client.device.filter(|d| user.as_ref().is_some_and(|u| u.id == d.user));
    let network = client.network();
    let account_key = match (&known_device, &user) {
        (Some(d), _) => format!("login:dev:{}", d.device),
        (None, Some(u)) => format!("login:acct:{}:{network}", u.id),
        (None, None) => format!("login:name:{key}:{network}"),
    };
    let limits = [
        Limit::new(client.ip_key("login"), LOGIN_IP_MAX, LOGIN_WINDOW),
        Limit::new(format!("login:net:{network}"), LOGIN_NETWORK_MAX, LOGIN_WINDOW),
        Limit::new(account_key, LOGIN_ACCOUNT_MAX, LOGIN_ACCOUNT_WINDOW),
    ];
    // Counted before the password is checked, atomically: parallel guesses cannot all pass a
    // check made before any of them failed. A success gives its count back.
    let now = Utc::now();
    throttle::take(&core.db, &limits, now).await?;

    let ok = core.passwords.verify(password, user.as_ref().map(|u| u.password_hash.clone())).await?;
    match user {
        Some(user) if ok => {
            // The address and network get this attempt back; the account's own count starts over.
            let (shared, account) = limits.split_at(2);
            throttle::give_back(&core.db, shared).await?;
            throttle::clear(&core.db, &account[0].key).await?;
            if user.suspended_at.is_some() {
                return Err(
                    AppError::invalid("username", "This account is suspended. Ask the instance's admin.").into()
                );
            }
            let new_device = known_device.is_none().then(|| DeviceCookie { user: user.id, device: Uuid::new_v4() });
            Ok(LoggedIn { user, new_device })
        }
        _ => Err(AppError::invalid("password", BAD_LOGIN).into()),
    }
}

pub struct Recovered {
    pub user: user::Model,
    pub recovery_code: String,
}

const BAD_RECOVERY: &str = "Wrong username or recovery code.";

/// Resets the password with the recovery code, issues a new code and ends every session.
pub async fn recover(
    core: &Core,
    username: &str,
    code: &str,
    new_password: String,
    client: &Client,
) -> ServerResult<Recovered> {
    field("new_password", validation::password(&new_password))?;
    if code.trim().is_empty() {
        return Err(AppError::invalid("recovery_code", "is required").into());
    }
    if code.len() > validation::MAX_CODE_LEN || username.len() > 64 {
        return Err(AppError::invalid("recovery_code", BAD_RECOVERY).into());
    }
    let key = username.trim().to_lowercase();
    let network = client.network();
    // Per network, like sign-in: a stranger's wrong codes never block the owner elsewhere.
    let limits = [
        Limit::new(client.ip_key("recover"), RECOVER_MAX, HOUR),
        Limit::new(format!("recover:net:{network}"), RECOVER_NETWORK_MAX, HOUR),
        Limit::new(format!("recover:name:{key}:{network}"), RECOVER_MAX, HOUR),
    ];
    let now = Utc::now();
    throttle::take(&core.db, &limits, now).await?;

    let user = user::Entity::find().filter(Column::UsernameKey.eq(&key)).one(&core.db).await?;
    let Some(user) = user.filter(|u| u.recovery_code_hash == hash_recovery_code(code)) else {
        return Err(AppError::invalid("recovery_code", BAD_RECOVERY).into());
    };
    throttle::give_back(&core.db, &limits).await?;
    let password_hash = core.passwords.hash(new_password).await?;
    let recovery_code = random_code(4);
    let txn = crate::db::begin_write(&core.db).await?;
    let mut active: user::ActiveModel = user.into();
    active.password_hash = Set(password_hash);
    active.recovery_code_hash = Set(hash_recovery_code(&recovery_code));
    active.password_changed_at = Set(now);
    let user = active.update(&txn).await?;
    super::session::revoke_all(&txn, user.id, now).await?;
    txn.commit().await?;
    core.realtime.publish(Signal::Revoke { user_id: user.id, session: None }).await;
    tracing::info!(user = %user.id, "password reset with the recovery code; all sessions revoked");
    Ok(Recovered { user, recovery_code })
}

/// Changes the password (the current one is asked again) and ends every session: whoever else
/// knew the old password is signed out everywhere, sockets included.
pub async fn change_password(
    core: &Core,
    user: user::Model,
    current_password: String,
    new_password: String,
) -> ServerResult<user::Model> {
    field("new_password", validation::password(&new_password))?;
    let limits = [Limit::new(format!("password:acct:{}", user.id), LOGIN_ACCOUNT_MAX, LOGIN_WINDOW)];
    let now = Utc::now();
    throttle::check(&core.db, &limits, now).await?;
    if current_password.chars().count() > 1024
        || !core.passwords.verify(current_password, Some(user.password_hash.clone())).await?
    {
        throttle::record_failure(&core.db, &limits, now).await?;
        return Err(AppError::invalid("current_password", "is not your current password").into());
    }
    let password_hash = core.passwords.hash(new_password).await?;
    let txn = crate::db::begin_write(&core.db).await?;
    let mut active: user::ActiveModel = user.into();
    active.password_hash = Set(password_hash);
    active.password_changed_at = Set(now);
    let user = active.update(&txn).await?;
    super::session::revoke_all(&txn, user.id, now).await?;
    txn.commit().await?;
    core.realtime.publish(Signal::Revoke { user_id: user.id, session: None }).await;
    tracing::info!(user = %user.id, "password changed; all sessions revoked");
    Ok(user)
}

/// Suspends or reinstates an account (instance owner and admins; the owner cannot be suspended,
/// and only the owner may suspend an admin). Suspension ends every session.
pub async fn set_suspended(
    core: &Core,
    actor: &user::Model,
    target: Uuid,
    suspended: bool,
) -> ServerResult<user::Model> {
    let db = &core.db;
    policy::may_administer(actor)?;
    let target = user::Entity::find_by_id(target).one(db).await?.ok_or(AppError::NotFound)?;
    policy::may_suspend(actor, &target)?;
    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;
    let mut active: user::ActiveModel = target.into();
    active.suspended_at = Set(suspended.then_some(now));
    let target = active.update(&txn).await?;
    if suspended {
        super::session::revoke_all(&txn, target.id, now).await?;
    }
    txn.commit().await?;
    if suspended {
        core.realtime.publish(Signal::Revoke { user_id: target.id, session: None }).await;
    }
    tracing::info!(user = %target.id, by = %actor.id, suspended, "account standing changed");
    Ok(target)
}

/// The account behind a session; `Unauthenticated` if it no longer exists or is suspended.
pub async fn current(core: &Core, session: Option<Session>) -> ServerResult<user::Model> {
    let session = session.ok_or(AppError::Unauthenticated)?;
    user::Entity::find_by_id(session.user_id)
        .one(&core.db)
        .await?
        .filter(|u| u.suspended_at.is_none())
        .ok_or_else(|| AppError::Unauthenticated.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let code = random_code(4);
        assert_eq!(code.len(), 19);
        assert!(code.split('-').all(|g| g.len() == 4 && g.bytes().all(|b| CODE_ALPHABET.contains(&b))), "{code}");
        assert_ne!(random_code(4), code);
        assert_eq!(normalize_code("abcd-efgh ijkl"), "ABCDEFGHIJKL");
        assert_eq!(hash_recovery_code("abcd-2345"), hash_recovery_code("ABCD2345"));
    }
}
