//! The typed server configuration: defaults → optional TOML file → environment variables.

use protocol::model::{CommunityCreationMode, RegistrationMode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
};

/// Everything the server can be configured with. Every field has a default, so an empty
/// configuration starts a working single-user instance on SQLite.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port to listen on (`LISTEN_ADDR`).
    pub listen_addr: SocketAddr,
    /// Directory for the SQLite database, the token signing key and other state (`DATA_DIR`).
    /// Created on start if missing.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL; unset means SQLite at `<data_dir>/chatalot.db` (`DATABASE_URL`).
    pub database_url: Option<SecretString>,
    /// The password for a PostgreSQL `DATABASE_URL` that names none (`DATABASE_PASSWORD`), so
    /// that it can come from a file of its own, e.g. a container secret (`DATABASE_PASSWORD_FILE`).
    pub database_password: Option<SecretString>,
    /// `open`, `invite_only` or `closed` (`REGISTRATION_MODE`).
    pub registration_mode: RegistrationMode,
    /// Who may create communities: `admin_only` or `open` (`COMMUNITY_CREATION_MODE`).
    pub community_creation_mode: CommunityCreationMode,
    /// Directory with the built web assets (`pkg/`, icons); defaults to `site` next to the binary's
    /// directory, as `cargo xtask build` lays it out (`SITE_DIR`).
    pub site_dir: Option<PathBuf>,
    /// The public URL users reach this server at, e.g. `https://chat.example.com` (`PUBLIC_URL`).
    /// When it is https, cookies are marked `Secure` and HSTS is sent.
    pub public_url: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`, comma-separated IPs).
    /// The client address is the right-most address in that header that is not a trusted proxy.
    #[serde(deserialize_with = "ip_list")]
    pub trusted_proxies: Vec<IpAddr>,
    /// `nats://host:4222` to run several nodes on one database: real-time events cross between nodes
    /// over NATS. Unset means one node with an in-process bus (`NATS_URL`).
    pub nats_url: Option<SecretString>,
    /// Open connections this node keeps at most (`MAX_CONNECTIONS`); unset: three quarters of the
    /// process's open-file limit (raised to its hard limit at start), at most 16,384. Connections
    /// beyond it are closed as soon as they are accepted.
    pub max_connections: Option<usize>,
    /// Open connections one client address keeps at most (`MAX_CONNECTIONS_PER_IP`); its network
    /// (an IPv4 /24, an IPv6 /48) gets four times as many. Trusted proxies are exempt.
    pub max_connections_per_ip: usize,
    /// Seconds a client has to send a request's headers, and that an idle keep-alive connection
    /// stays open (`HEADER_TIMEOUT_SECS`).
    pub header_timeout_secs: u64,
    /// Messages one person may send per minute, over every path and channel together
    /// (`MESSAGES_PER_MINUTE`).
    pub messages_per_minute: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database_url: None,
            database_password: None,
            registration_mode: RegistrationMode::InviteOnly,
            community_creation_mode: CommunityCreationMode::AdminOnly,
            site_dir: None,
            public_url: None,
            trusted_proxies: Vec::new(),
            nats_url: None,
            max_connections: None,
            max_connections_per_ip: 256,
            header_timeout_secs: 10,
            messages_per_minute: 120,
        }
    }
}

/// One setting: its environment variable (the TOML key is the same name in lower case), its
/// default as shown to people, and what it does. `--help` and the README are written from this list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    pub env: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// Every setting of [`Config`], in the order `--help` shows them. A test checks that each field of
/// `Config` has an entry.
pub const SETTINGS: &[Setting] = &[
    Setting { env: "LISTEN_ADDR", default: "127.0.0.1:8080", help: "address and port to listen on" },
    Setting { env: "DATA_DIR", default: "./data", help: "SQLite database, token signing key, other state" },
    Setting {
        env: "DATABASE_URL",
        default: "SQLite in DATA_DIR",
        help: "postgres://user:pass@host/db to use PostgreSQL",
    },
    Setting {
        env: "DATABASE_PASSWORD",
        default: "-",
        help: "the password for a DATABASE_URL that names none (e.g. from a file: DATABASE_PASSWORD_FILE)",
    },
    Setting { env: "REGISTRATION_MODE", default: "invite_only", help: "open | invite_only | closed" },
    Setting {
        env: "COMMUNITY_CREATION_MODE",
        default: "admin_only",
        help: "who may create communities: admin_only | open",
    },
    Setting { env: "SITE_DIR", default: "<binary dir>/site, else <binary dir>/../site", help: "the built web assets" },
    Setting { env: "PUBLIC_URL", default: "-", help: "e.g. https://chat.example.com (https: Secure cookies and HSTS)" },
    Setting {
        env: "TRUSTED_PROXIES",
        default: "-",
        help: "comma-separated proxy IPs whose X-Forwarded-For is believed",
    },
    Setting {
        env: "NATS_URL",
        default: "- (one node)",
        help: "nats://host:4222 to run several nodes on one PostgreSQL database",
    },
    Setting {
        env: "MAX_CONNECTIONS",
        default: "3/4 of the file limit, ≤ 16384",
        help: "open connections this node keeps at most",
    },
    Setting {
        env: "MAX_CONNECTIONS_PER_IP",
        default: "256",
        help: "open connections per client address (4× per /24 or /48 network)",
    },
    Setting {
        env: "HEADER_TIMEOUT_SECS",
        default: "10",
        help: "seconds to send request headers; idle keep-alive connections close after it",
    },
    Setting {
        env: "MESSAGES_PER_MINUTE",
        default: "120",
        help: "messages one person may send per minute (socket and HTTP together)",
    },
];

/// The environment variables the configuration reads (one per `Config` field).
pub fn env_vars() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().map(|s| s.env)
}

impl Config {
    /// The database URL to connect to: the configured one, or SQLite inside the data directory.
    pub fn database_url(&self) -> SecretString {
        match &self.database_url {
            Some(url) if !url.expose_secret().trim().is_empty() => match &self.database_password {
                Some(password) => with_password(url.expose_secret().trim(), password.expose_secret()),
                None => url.clone(),
            },
            _ => {
                let path = self.data_dir.join("chatalot.db");
                SecretString::from(format!("sqlite://{}?mode=rwc", path.display()))
            }
        }
    }

    /// Whether the public URL is https (cookies get `Secure`, responses get HSTS).
    pub fn is_https(&self) -> bool {
        self.public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
    }

    /// Checks what serde cannot: returns one line saying what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.database_url {
            let url = url.expose_secret().trim();
            let known = ["postgres://", "postgresql://", "sqlite:"].iter().any(|p| url.starts_with(p));
            if !url.is_empty() && !known {
                return Err("DATABASE_URL must start with postgres://, postgresql:// or sqlite:".into());
            }
        }
        if self.database_password.is_some() {
            let url = self.database_url.as_ref().map(|u| u.expose_secret().trim()).unwrap_or_default();
            if !url.starts_with("postgres") {
                return Err("DATABASE_PASSWORD is for a postgres:// DATABASE_URL".into());
            }
            if url::Url::parse(url).is_ok_and(|u| u.password().is_some()) {
                return Err("DATABASE_URL names a password already: leave DATABASE_PASSWORD unset".into());
            }
        }
        if let Some(url) = &self.nats_url {
            let url = url.expose_secret().trim();
            if !url.is_empty() && !["nats://", "tls://"].iter().any(|p| url.starts_with(p)) {
                return Err("NATS_URL must start with nats:// or tls://".into());
            }
        }
        if self.messages_per_minute == 0 || self.messages_per_minute > 100_000 {
            return Err("MESSAGES_PER_MINUTE must be between 1 and 100000".into());
        }
        if self.max_connections == Some(0) || self.max_connections_per_ip == 0 {
            return Err("MAX_CONNECTIONS and MAX_CONNECTIONS_PER_IP must be at least 1".into());
        }
        if !(1..=600).contains(&self.header_timeout_secs) {
            return Err("HEADER_TIMEOUT_SECS must be between 1 and 600".into());
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!("PUBLIC_URL must start with http:// or https:// (got {url:?})"));
        }
        Ok(())
    }
}

/// `url` with `password` put in (percent-encoded); `url` unchanged if it cannot hold one.
fn with_password(url: &str, password: &str) -> SecretString {
    let Ok(mut parsed) = url::Url::parse(url) else { return SecretString::from(url.to_owned()) };
    match parsed.set_password(Some(password)) {
        Ok(()) => SecretString::from(String::from(parsed)),
        Err(()) => SecretString::from(url.to_owned()),
    }
}

/// Accepts a list of IPs either as a TOML array or as one comma-separated string (from the environment).
fn ip_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        One(String),
        Many(Vec<String>),
    }
    let items = match List::deserialize(d)? {
        List::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
        List::Many(v) => v,
    };
    items
        .iter()
        .map(|s| s.parse().map_err(|_| serde::de::Error::custom(format!("{s:?} is not an IP address"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_database_is_sqlite_in_the_data_dir() {
        let c = Config { data_dir: "/var/lib/chatalot".into(), ..Config::default() };
        assert_eq!(c.database_url().expose_secret(), "sqlite:///var/lib/chatalot/chatalot.db?mode=rwc");
    }

    #[test]
    fn a_password_of_its_own_goes_into_the_url() {
        let c = Config {
            database_url: Some("postgres://chat@db:5432/chat".to_owned().into()),
            database_password: Some("p@ss/w:rd ü".to_owned().into()),
            ..Config::default()
        };
        assert!(c.validate().is_ok());
        let url = c.database_url();
        assert_eq!(url.expose_secret(), "postgres://chat:p%40ss%2Fw%3Ard%20%C3%BC@db:5432/chat");
        let twice = Config { database_url: Some("postgres://chat:x@db/chat".to_owned().into()), ..c.clone() };
        assert!(twice.validate().unwrap_err().contains("already"));
        let sqlite = Config { database_url: None, ..c };
        assert!(sqlite.validate().unwrap_err().contains("DATABASE_PASSWORD"));
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = Config { database_url: Some("postgres://u:hunter2@db/chat".to_owned().into()), ..Config::default() };
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    /// Every field of `Config` is a setting people can find in `--help`, and every setting is a
    /// field. serde names every field it expects when it refuses an unknown one.
    #[test]
    fn every_field_is_a_documented_setting() {
        let refused = serde_json::from_str::<Config>(r#"{"no_such_setting": 1}"#).unwrap_err().to_string();
        let expected = refused.split("expected one of").nth(1).unwrap_or_default();
        let fields: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        assert!(fields.len() > 5, "{refused}");
        for name in &fields {
            assert!(SETTINGS.iter().any(|s| s.env.to_lowercase() == *name), "Config::{name} has no entry in SETTINGS");
        }
        assert_eq!(fields.len(), SETTINGS.len(), "an entry in SETTINGS names no Config field: {fields:?}");
    }

    #[test]
    fn validation() {
        let bad = Config { database_url: Some("mysql://x".to_owned().into()), ..Config::default() };
        assert!(bad.validate().unwrap_err().contains("DATABASE_URL"));
        let bad = Config { public_url: Some("chat.example.com".into()), ..Config::default() };
        assert!(bad.validate().unwrap_err().contains("PUBLIC_URL"));
        let bad = Config { nats_url: Some("http://nats".to_owned().into()), ..Config::default() };
        assert!(bad.validate().unwrap_err().contains("NATS_URL"));
        let bad = Config { max_connections_per_ip: 0, ..Config::default() };
        assert!(bad.validate().unwrap_err().contains("MAX_CONNECTIONS_PER_IP"));
        let bad = Config { header_timeout_secs: 0, ..Config::default() };
        assert!(bad.validate().unwrap_err().contains("HEADER_TIMEOUT_SECS"));
        assert!(Config::default().validate().is_ok());
    }
}
