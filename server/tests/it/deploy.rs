//! What the Dockerfile and compose.yaml promise, read from the files themselves (the image is
//! built and started by `cargo xtask image`; compose.yaml is also resolved by podman-compose there).

use serde_norway::Value;
use std::path::Path;

fn checkout_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn compose() -> Value {
    let mut value: Value = serde_norway::from_str(&checkout_file("compose.yaml")).expect("compose.yaml is YAML");
    // Merge keys inside merged anchors (x-app merges x-hardened) resolve on the next pass.
    for _ in 0..3 {
        value.apply_merge().expect("merge keys resolve");
    }
    value
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
}

/// A setting the server reads (or its `_FILE` form), or the log filter.
fn known_setting(name: &str) -> bool {
    let base = name.strip_suffix("_FILE").unwrap_or(name);
    name == "RUST_LOG" || name == "TMPDIR" || domain::config::env_vars().any(|v| v == base)
}

#[test]
fn compose_is_hardened_and_keeps_the_database_inside() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services");
    assert!(services.len() >= 4, "app, db, nats, app-2");
    for (name, service) in services {
        let name = name.as_str().unwrap();
        assert_eq!(strings(&service["cap_drop"]), ["ALL"], "{name}: cap_drop");
        assert!(strings(&service["security_opt"]).contains(&"no-new-privileges:true".into()), "{name}");
        assert_eq!(service["read_only"].as_bool(), Some(true), "{name}: read_only");
        assert_eq!(service["restart"].as_str(), Some("unless-stopped"), "{name}: restart");
        assert!(service["logging"]["options"]["max-size"].as_str().is_some(), "{name}: log rotation");
        assert_eq!(strings(&service["healthcheck"]["test"]).first().map(String::as_str), Some("CMD"), "{name}");
        let published = service.get("ports").is_some();
        assert_eq!(published, name.starts_with("app"), "{name}: only the app nodes publish a port");
        if !name.starts_with("app") {
            assert_eq!(strings(&service["networks"]), ["back"], "{name}: only on the internal network");
        }
        // Every dependency exists and is waited for until healthy, not just started.
        for (dep, how) in service["depends_on"].as_mapping().into_iter().flatten() {
            assert!(services.contains_key(dep), "{name} depends on {dep:?}, which is no service");
            assert_eq!(how["condition"].as_str(), Some("service_healthy"), "{name} → {dep:?}");
        }
        // What it names is declared.
        for network in strings(&service["networks"]) {
            assert!(compose["networks"].get(network.as_str()).is_some(), "{name}: network {network}");
        }
        for secret in strings(&service["secrets"]) {
            assert!(compose["secrets"].get(secret.as_str()).is_some(), "{name}: secret {secret}");
        }
        for volume in strings(&service["volumes"]) {
            let source = volume.split(':').next().unwrap_or_default();
            assert!(compose["volumes"].get(source).is_some(), "{name}: volume {source}");
        }
        // No password in the file: only secrets.
        for (key, value) in service["environment"].as_mapping().into_iter().flatten() {
            let (key, value) = (key.as_str().unwrap(), value.as_str().unwrap_or_default());
            assert!(!key.ends_with("PASSWORD"), "{name}: {key} in the environment; use a secret file");
            if let Some((_, rest)) = value.split_once("://")
                && let Some((userinfo, _)) = rest.split_once('@')
            {
                assert!(!userinfo.contains(':'), "{name}: {key} holds a password");
            }
            if name.starts_with("app") {
                assert!(known_setting(key), "{name}: {key} is no setting of the server");
            }
        }
    }
    assert_eq!(compose["networks"]["back"]["internal"].as_bool(), Some(true));
    let app = &compose["services"]["app"];
    assert_eq!(strings(&app["healthcheck"]["test"])[1..], ["/usr/local/bin/chatalot-server", "healthcheck"]);
    assert_eq!(app["environment"]["DATABASE_PASSWORD_FILE"].as_str(), Some("/run/secrets/db_password"));
    assert_eq!(
        compose["services"]["db"]["environment"]["POSTGRES_PASSWORD_FILE"].as_str(),
        Some("/run/secrets/db_password")
    );
    assert!(compose["secrets"]["db_password"]["file"].as_str().is_some());
    // The image's user owns nothing but its volume; the database runs as its own unprivileged user.
    assert_ne!(compose["services"]["db"]["user"].as_str(), Some("0"));
    for optional in ["nats", "app-2"] {
        assert_eq!(strings(&compose["services"][optional]["profiles"]), ["cluster"], "{optional}");
    }
}

#[test]
fn dockerfile_runs_unprivileged_with_a_health_check_and_graceful_stop() {
    let dockerfile = checkout_file("Dockerfile");
    // The last stage: what the image is.
    let last = dockerfile.rsplit("\nFROM ").next().unwrap();
    let lines: Vec<String> = last.replace("\\\n", " ").lines().map(str::trim).map(str::to_owned).collect();
    let directive = |name: &str| lines.iter().find(|l| l.starts_with(&format!("{name} "))).cloned().unwrap_or_default();
    assert!(last.starts_with("scratch"), "the runtime stage is built from nothing but the root filesystem");
    assert_eq!(directive("USER"), format!("USER {0}:{0}", 10001));
    assert!(directive("HEALTHCHECK").contains(r#"CMD ["/usr/local/bin/chatalot-server", "healthcheck"]"#));
    assert_eq!(directive("STOPSIGNAL"), "STOPSIGNAL SIGTERM");
    assert_eq!(directive("VOLUME"), r#"VOLUME ["/data"]"#);
    assert_eq!(directive("ENTRYPOINT"), r#"ENTRYPOINT ["/usr/local/bin/chatalot-server"]"#);
    let labels = directive("LABEL");
    for label in ["org.opencontainers.image.version", "org.opencontainers.image.source"] {
        assert!(labels.contains(label), "no {label}");
    }
    for pair in directive("ENV").trim_start_matches("ENV ").split_whitespace() {
        let name = pair.split('=').next().unwrap();
        assert!(known_setting(name), "ENV {name} is no setting of the server");
    }
    // The prebuilt path the offline build takes exists, and the default builds from source.
    assert!(dockerfile.contains("ARG ROOTFS=source") && dockerfile.contains("AS prebuilt"));
}
