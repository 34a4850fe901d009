//! Loading `domain::config::Config`: defaults → optional TOML file → environment variables.
//!
//! Each setting `X` may instead name a file to read its value from, `X_FILE` (container secrets:
//! a password never has to sit in the environment). A variable set to the empty string counts as
//! unset, so compose files can pass `${VAR:-}` through.

use domain::config::{Config, env_vars};
use figment::{
    Figment, Metadata, Profile, Provider,
    providers::{Format, Toml},
    value::{Dict, Map, Value},
};
use std::path::Path;

/// The settings from the environment (`X`, or the contents of the file `X_FILE`).
struct Environment;

impl Provider for Environment {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for name in env_vars() {
            let value = std::env::var(name).ok().filter(|v| !v.is_empty());
            let file_var = format!("{name}_FILE");
            let file = std::env::var_os(&file_var).filter(|v| !v.is_empty());
            let value = match (value, file) {
                (Some(_), Some(_)) => return Err(format!("set {name} or {file_var}, not both").into()),
                (Some(value), None) => value,
                (None, Some(path)) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("{file_var}: cannot read {}: {e}", Path::new(&path).display()))?;
                    text.trim_end_matches(['\r', '\n']).to_owned()
                }
                (None, None) => continue,
            };
            // As figment's own environment provider reads values: numbers, booleans, arrays…
            let parsed: Value = match value.parse() {
                Ok(parsed) => parsed,
                Err(never) => match never {},
            };
            dict.insert(name.to_lowercase(), parsed);
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Loads and validates the configuration; the error is one line meant for a human.
pub fn load(file: Option<&Path>) -> Result<Config, String> {
    let mut figment = Figment::new();
    if let Some(path) = file {
        if !path.is_file() {
            return Err(format!("configuration file {} does not exist", path.display()));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(Environment);
    let config: Config = figment.extract().map_err(|e| one_line(&e))?;
    config.validate()?;
    Ok(config)
}

fn one_line(e: &figment::Error) -> String {
    // figment names the key and its source (the file); a value from the environment is named by
    // its variable, as people set it.
    e.clone()
        .into_iter()
        .map(|e| match (&e.metadata, e.path.last()) {
            (Some(meta), Some(key)) if meta.name == "environment variable" => {
                format!("{}: {}", key.to_uppercase(), e.kind)
            }
            _ => e.to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn precedence_is_defaults_then_file_then_environment() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "chatalot.toml",
                "listen_addr = \"0.0.0.0:9000\"\nregistration_mode = \"open\"\ndata_dir = \"/srv/chat\"",
            )?;
            jail.set_env("REGISTRATION_MODE", "closed");
            jail.set_env("COMMUNITY_CREATION_MODE", "open");
            jail.set_env("NATS_URL", "nats://127.0.0.1:4222");
            let c = load(Some(Path::new("chatalot.toml"))).map_err(figment::Error::from)?;
            assert_eq!(c.listen_addr.to_string(), "0.0.0.0:9000");
            assert_eq!(c.registration_mode, protocol::model::RegistrationMode::Closed);
            assert_eq!(c.data_dir, Path::new("/srv/chat"));
            assert!(c.database_url.is_none());
            assert_eq!(c.community_creation_mode, protocol::model::CommunityCreationMode::Open);
            assert!(c.nats_url.is_some());
            Ok(())
        });
    }

    #[test]
    fn bad_values_give_one_clear_line() {
        Jail::expect_with(|jail| {
            jail.set_env("LISTEN_ADDR", "not-an-address");
            let e = load(None).unwrap_err();
            assert!(e.contains("listen_addr") || e.contains("LISTEN_ADDR"), "{e}");
            assert!(!e.contains('\n'));
            jail.set_env("LISTEN_ADDR", "127.0.0.1:1");
            jail.set_env("REGISTRATION_MODE", "everyone");
            let e = load(None).unwrap_err();
            assert!(e.contains("everyone"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn unknown_file_keys_and_missing_files_are_errors() {
        Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "listen_adr = \"0.0.0.0:1\"")?;
            assert!(load(Some(Path::new("typo.toml"))).unwrap_err().contains("listen_adr"));
            assert!(load(Some(Path::new("missing.toml"))).unwrap_err().contains("does not exist"));
            Ok(())
        });
    }

    #[test]
    fn secrets_from_files_and_empty_means_unset() {
        Jail::expect_with(|jail| {
            jail.create_file("db_password", "s3cret pw\n")?;
            jail.set_env("DATABASE_URL", "postgres://chat@db/chat");
            jail.set_env("DATABASE_PASSWORD_FILE", "db_password");
            jail.set_env("PUBLIC_URL", "");
            jail.set_env("NATS_URL", "");
            let c = load(None).map_err(figment::Error::from)?;
            use secrecy::ExposeSecret;
            assert_eq!(c.database_url().expose_secret(), "postgres://chat:s3cret%20pw@db/chat");
            assert!(c.public_url.is_none() && c.nats_url.is_none());
            jail.set_env("DATABASE_PASSWORD", "other");
            assert!(load(None).unwrap_err().contains("not both"));
            jail.set_env("DATABASE_PASSWORD", "");
            jail.set_env("DATABASE_PASSWORD_FILE", "missing");
            let e = load(None).unwrap_err();
            assert!(e.contains("DATABASE_PASSWORD_FILE") && e.contains("missing"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn trusted_proxies_from_the_environment() {
        Jail::expect_with(|jail| {
            jail.set_env("TRUSTED_PROXIES", "10.0.0.1, ::1");
            let c = load(None).map_err(figment::Error::from)?;
            assert_eq!(c.trusted_proxies.len(), 2);
            jail.set_env("TRUSTED_PROXIES", "10.0.0.1,nope");
            assert!(load(None).unwrap_err().contains("nope"));
            Ok(())
        });
    }
}
