//! Which server the window may show: the URL rules, the health check before connecting, and the
//! remembered choice.
//!
//! A server is `https://…`; plain `http://` only on this computer (a loopback address or
//! `localhost`), where nothing crosses a network. The check asks `/healthz` with TLS verified
//! against the system's trust store: a certificate error is fatal, never a question to click away.

use serde::{Deserialize, Serialize};
use std::{net::IpAddr, path::Path, time::Duration};
use url::{Host, Url};

/// The server's origin from what a person typed: `chat.example.com` means
/// `https://chat.example.com/`. Paths, queries and credentials are not part of a server's address.
pub fn parse(input: &str) -> Result<Url, String> {
    let input = input.trim();
    if input.is_empty() {
        return Err("Enter your server's address, e.g. https://chat.example.com".into());
    }
    let with_scheme = if input.contains("://") { input.to_owned() } else { format!("https://{input}") };
    let url = Url::parse(&with_scheme).map_err(|e| format!("\"{input}\" is not a web address ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("Leave the name and password out of the address: you sign in on the server's page".into());
    }
    let host = url.host().ok_or_else(|| format!("\"{input}\" names no server"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        "http" => {
            return Err(format!(
                "Use https://{}: plain http is allowed only for a server on this computer",
                url.host_str().unwrap_or_default()
            ));
        }
        other => return Err(format!("{other}:// is not a web address: use https://")),
    }
    Url::parse(&url.origin().ascii_serialization()).and_then(|u| u.join("/")).map_err(|e| e.to_string())
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

#[derive(Deserialize)]
struct Health {
    status: String,
    version: Option<String>,
}

/// Asks the server's `/healthz`; returns its version, or why it will not be used.
pub fn check(server: &Url) -> Result<String, String> {
    use ureq::tls::{RootCerts, TlsConfig};
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(8)))
        .max_redirects(0)
        .http_status_as_error(false)
        .tls_config(TlsConfig::builder().root_certs(RootCerts::PlatformVerifier).build())
        .build()
        .into();
    let health = server.join("healthz").map_err(|e| e.to_string())?;
    let host = server.host_str().unwrap_or_default();
    let mut reply = agent.get(health.as_str()).call().map_err(|e| match e {
        ureq::Error::Rustls(tls) => {
            format!("{host}'s certificate is not valid ({tls}). Chatalot does not connect to it.")
        }
        ureq::Error::Tls(tls) => format!("{host}'s certificate is not valid ({tls}). Chatalot does not connect to it."),
        // rustls reports a refused certificate through the stream, as an I/O error.
        ureq::Error::Io(io) if io.to_string().contains("certificate") => {
            format!("{host}'s certificate is not valid ({io}). Chatalot does not connect to it.")
        }
        ureq::Error::HostNotFound => format!("{host} was not found: check the address"),
        ureq::Error::ConnectionFailed | ureq::Error::Io(_) => format!("Nothing answers at {server}: is it running?"),
        ureq::Error::Timeout(_) => format!("{server} did not answer within 8 seconds"),
        other => format!("{server} could not be asked: {other}"),
    })?;
    let not_chatalot = || format!("{server} is not a Chatalot server");
    if reply.status().as_u16() != 200 {
        return match reply.status().as_u16() {
            503 => Err(format!("{server} is a Chatalot server, but it is not healthy right now (its database?)")),
            _ => Err(not_chatalot()),
        };
    }
    let health: Health = reply.body_mut().with_config().limit(64 * 1024).read_json().map_err(|_| not_chatalot())?;
    if health.status != "ok" {
        return Err(not_chatalot());
    }
    Ok(health.version.unwrap_or_default())
}

/// The remembered server, kept in the app's config directory.
#[derive(Serialize, Deserialize)]
struct Remembered {
    server: String,
}

const FILE: &str = "server.json";

pub fn load(dir: &Path) -> Option<Url> {
    let text = std::fs::read_to_string(dir.join(FILE)).ok()?;
    let remembered: Remembered = serde_json::from_str(&text).ok()?;
    parse(&remembered.server).ok()
}

pub fn save(dir: &Path, server: &Url) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let text = serde_json::to_string(&Remembered { server: server.to_string() }).map_err(|e| e.to_string())?;
    let (path, partial) = (dir.join(FILE), dir.join(format!("{FILE}.partial")));
    std::fs::write(&partial, text).map_err(|e| format!("{}: {e}", partial.display()))?;
    std::fs::rename(&partial, &path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether `url` belongs to `server` (same scheme, host and port).
pub fn same_origin(url: &Url, server: &Url) -> bool {
    url.origin() == server.origin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_people_type() {
        assert_eq!(parse("chat.example.com").unwrap().as_str(), "https://chat.example.com/");
        assert_eq!(
            parse(" https://chat.example.com:8443/c/123?x#y ").unwrap().as_str(),
            "https://chat.example.com:8443/"
        );
        assert_eq!(parse("http://127.0.0.1:8080").unwrap().as_str(), "http://127.0.0.1:8080/");
        assert_eq!(parse("http://localhost:8080/").unwrap().as_str(), "http://localhost:8080/");
        assert_eq!(parse("http://[::1]:8080").unwrap().as_str(), "http://[::1]:8080/");
    }

    #[test]
    fn plain_http_only_on_this_computer() {
        for bad in
            ["http://chat.example.com", "http://192.168.1.10:8080", "http://10.0.0.1", "http://localhost.evil.com"]
        {
            assert!(parse(bad).unwrap_err().contains("https://"), "{bad}");
        }
        assert!(parse("ftp://chat.example.com").is_err());
        assert!(parse("javascript:alert(1)").is_err());
        assert!(parse("https://user:pw@chat.example.com").unwrap_err().contains("password"));
        assert!(parse("").is_err());
    }

    #[test]
    fn origins() {
        let server = parse("https://chat.example.com").unwrap();
        assert!(same_origin(&Url::parse("https://chat.example.com/c/1").unwrap(), &server));
        assert!(!same_origin(&Url::parse("http://chat.example.com/").unwrap(), &server));
        assert!(!same_origin(&Url::parse("https://chat.example.com:444/").unwrap(), &server));
        assert!(!same_origin(&Url::parse("https://example.org/").unwrap(), &server));
    }

    #[test]
    fn remembered_across_starts() {
        let dir = std::env::temp_dir().join(format!("chatalot-desktop-test-{}", std::process::id()));
        assert!(load(&dir).is_none());
        save(&dir, &parse("chat.example.com").unwrap()).unwrap();
        assert_eq!(load(&dir).unwrap().as_str(), "https://chat.example.com/");
        let _ = std::fs::remove_dir_all(dir);
    }
}
