//! The session's cookies: the browser's transport for the tokens the domain issues
//! (`domain::session`). HttpOnly, SameSite=Lax, on `/`; `Secure` when the public URL is https.

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};
use domain::{
    Core, ServerResult,
    session::{self, Issued, Session},
    tokens::{ACCESS_TTL, REFRESH_TTL},
};

pub use protocol::cookies::{
    ACCESS as ACCESS_COOKIE, DEVICE as DEVICE_COOKIE, RECOVERY_FLASH as RECOVERY_FLASH_COOKIE,
    REFRESH as REFRESH_COOKIE,
};

/// The value of cookie `name` in the request, if present.
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// A `Set-Cookie` value for an HttpOnly, SameSite=Lax cookie on `/`. A value that cannot be a
/// header (it never happens: names and values here are ASCII) becomes an empty, expired cookie.
pub fn set_cookie(name: &str, value: &str, max_age: chrono::Duration, secure: bool) -> HeaderValue {
    let cookie = Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age.num_seconds()))
        .build();
    HeaderValue::from_str(&cookie.to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("chatalot_invalid=; Max-Age=0"))
}

pub fn clear_cookie(name: &str, secure: bool) -> HeaderValue {
    set_cookie(name, "", chrono::Duration::zero(), secure)
}

/// The cookies that carry a session's tokens.
pub fn session_cookies(issued: &Issued, secure: bool) -> Vec<HeaderValue> {
    vec![
        set_cookie(ACCESS_COOKIE, &issued.access, ACCESS_TTL, secure),
        set_cookie(REFRESH_COOKIE, &issued.refresh, REFRESH_TTL, secure),
    ]
}

/// Cookies that end the session in this browser.
pub fn clear_session_cookies(secure: bool) -> Vec<HeaderValue> {
    vec![clear_cookie(ACCESS_COOKIE, secure), clear_cookie(REFRESH_COOKIE, secure)]
}

/// What the request's cookies amount to: its session, and cookies to set on the response
/// (rotated tokens, or clearing dead ones).
pub async fn resolve(core: &Core, headers: &HeaderMap) -> ServerResult<(Option<Session>, Vec<HeaderValue>)> {
    let access = read_cookie(headers, ACCESS_COOKIE);
    let refresh = read_cookie(headers, REFRESH_COOKIE);
    let resolved = session::resolve(core, access.as_deref(), refresh.as_deref()).await?;
    let secure = core.config.is_https();
    let cookies = match (&resolved.issued, resolved.forget) {
        (Some(issued), _) => session_cookies(issued, secure),
        (None, true) => clear_session_cookies(secure),
        (None, false) => vec![],
    };
    Ok((resolved.session, cookies))
}

/// The access token of a WebSocket upgrade: an `Authorization: Bearer` header (desktop, bots,
/// tests), else the access-token cookie.
pub fn socket_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .or_else(|| read_cookie(headers, ACCESS_COOKIE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_http_only_and_lax() {
        let v = set_cookie(ACCESS_COOKIE, "abc", ACCESS_TTL, false);
        let s = v.to_str().unwrap();
        assert!(s.starts_with("chatalot_at=abc"), "{s}");
        for part in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=900"] {
            assert!(s.contains(part), "{s} lacks {part}");
        }
        assert!(!s.contains("Secure"));
        assert!(set_cookie(ACCESS_COOKIE, "abc", ACCESS_TTL, true).to_str().unwrap().contains("Secure"));
    }

    #[test]
    fn reads_cookies_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; chatalot_rt=xyz; b=2".parse().unwrap());
        assert_eq!(read_cookie(&h, REFRESH_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(read_cookie(&h, ACCESS_COOKIE), None);
        let mut bad = HeaderMap::new();
        bad.insert(header::COOKIE, ";;==; =".parse().unwrap());
        assert_eq!(read_cookie(&bad, ACCESS_COOKIE), None);
    }
}
