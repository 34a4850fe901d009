//! Input rules shared by the browser (instant feedback) and the server (the authority).
//! Each returns the message shown next to the field.

/// Usernames: 3–32 characters of `A–Z a–z 0–9 _ . -`.
pub fn username(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if len < 3 {
        return Err("must be at least 3 characters".into());
    }
    if len > 32 {
        return Err("must be at most 32 characters".into());
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(format!("may only contain letters, digits, '_', '.' and '-' (not {bad:?})"));
    }
    Ok(())
}

/// Display names: 1–64 characters after trimming, no control characters.
pub fn display_name(name: &str) -> Result<(), String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > 64 {
        return Err("must be at most 64 characters".into());
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// Passwords: 8–128 characters. No composition rules (NIST SP 800-63B): length is what counts.
pub fn password(pw: &str) -> Result<(), String> {
    let len = pw.chars().count();
    if len < 8 {
        return Err("must be at least 8 characters".into());
    }
    if len > 128 {
        return Err("must be at most 128 characters".into());
    }
    Ok(())
}

/// Invite and recovery codes are short; anything longer than this is rejected before any lookup.
pub const MAX_CODE_LEN: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    fn check(f: fn(&str) -> Result<(), String>, input: &str, ok: bool) {
        assert_eq!(f(input).is_ok(), ok, "{input:?}: {:?}", f(input));
    }

    #[test]
    fn usernames() {
        for (input, ok) in [
            ("abc", true),
            ("ab", false),
            ("a.b-c_D9", true),
            (&"x".repeat(32), true),
            (&"x".repeat(33), false),
            ("with space", false),
            ("émile", false),
            ("semi;colon", false),
            ("", false),
        ] {
            check(username, input, ok);
        }
    }

    #[test]
    fn display_names() {
        for (input, ok) in
            [("Ann", true), ("   ", false), ("", false), ("Zoë 🦀", true), ("a\u{7}b", false), (&"y".repeat(65), false)]
        {
            check(display_name, input, ok);
        }
    }

    #[test]
    fn passwords() {
        for (input, ok) in [
            ("1234567", false),
            ("12345678", true),
            (&"p".repeat(128), true),
            (&"p".repeat(129), false),
            ("ünïcödé!", true),
        ] {
            check(password, input, ok);
        }
    }
}
