//! Where a link may take the window, and what a `chatalot://` link opens.

use tauri::Url;

/// The app's own connect screen (`tauri://localhost` on Linux and macOS, `http(s)://tauri.localhost`
/// on Windows), and the blank page a webview starts on.
pub fn is_local(url: &Url) -> bool {
    match url.scheme() {
        "tauri" => url.host_str() == Some("localhost"),
        "http" | "https" => url.host_str() == Some("tauri.localhost"),
        "about" => url.as_str() == "about:blank",
        _ => false,
    }
}

/// Links that go to the system browser (or mail program) instead of the window.
pub fn is_external(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https" | "mailto")
}

/// The server page a `chatalot://` link means:
/// - `chatalot://c/<channel id>`: that conversation;
/// - `chatalot://invite/<code>`: registration with that invite code filled in.
///
/// Anything else opens nothing (`None`).
pub fn target(link: &str, server: &Url) -> Option<Url> {
    let link = Url::parse(link).ok()?;
    if link.scheme() != "chatalot" {
        return None;
    }
    let arg = link.path().trim_matches('/');
    match link.host_str()? {
        "c" if arg.len() == 36 && arg.chars().all(|c| c.is_ascii_hexdigit() || c == '-') => {
            server.join(&format!("c/{}", arg.to_ascii_lowercase())).ok()
        }
        "invite" if (1..=64).contains(&arg.len()) && arg.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
            let mut url = server.join("register").ok()?;
            url.query_pairs_mut().append_pair("invite", arg);
            Some(url)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Url {
        Url::parse("https://chat.example.com/").unwrap()
    }

    #[test]
    fn links_open_a_conversation_or_an_invite() {
        let id = "0190a3c2-7b1e-7c3d-9f00-0123456789ab";
        assert_eq!(
            target(&format!("chatalot://c/{id}"), &server()).unwrap().as_str(),
            format!("https://chat.example.com/c/{id}")
        );
        assert_eq!(
            target("chatalot://invite/ABCD-1234", &server()).unwrap().as_str(),
            "https://chat.example.com/register?invite=ABCD-1234"
        );
        for bad in [
            "chatalot://c/../../admin",
            "chatalot://invite/a%2Fb",
            "chatalot://elsewhere/x",
            "https://evil.com/c/1",
            "",
            "chatalot://c/",
        ] {
            assert!(target(bad, &server()).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_window_stays_home() {
        assert!(is_local(&Url::parse("tauri://localhost/index.html").unwrap()));
        assert!(!is_local(&Url::parse("tauri://evil/index.html").unwrap()));
        assert!(is_external(&Url::parse("https://example.org/").unwrap()));
        assert!(!is_external(&Url::parse("file:///etc/passwd").unwrap()));
        assert!(!is_external(&Url::parse("javascript:alert(1)").unwrap()));
    }
}
