//! Loading `domain::config::Config`: defaults → optional TOML file → environment variables.

use domain::config::{Config, env_vars};
use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use std::path::Path;

/// Loads and validates the configuration; the error is one line meant for a human.
pub fn load(file: Option<&Path>) -> Result<Config, String> {
    let mut figment = Figment::new();
    if let Some(path) = file {
        if !path.is_file() {
            return Err(format!("configuration file {} does not exist", path.display()));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(Env::raw().only(&env_vars().collect::<Vec<_>>()));
    let config: Config = figment.extract().map_err(|e| one_line(&e))?;
    config.validate()?;
    Ok(config)
}

fn one_line(e: &figment::Error) -> String {
    // figment names the key and its source (file or environment variable).
    e.clone().into_iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
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
