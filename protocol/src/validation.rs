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

/// Display names: 1–64 characters after trimming, no control or invisible characters.
pub fn display_name(name: &str) -> Result<(), String> {
    shown_name(name, 64)
}

/// Whether `c` changes how text around it is shown without being seen itself: bidirectional
/// overrides and isolates (which can make "gpj.exe" read as "exe.jpg") and zero-width characters
/// (which make two names that look alike differ).
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200C}' // zero-width space and non-joiner
        | '\u{200E}'..='\u{200F}' // left-to-right and right-to-left marks
        | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
        | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}' // bidi isolates
        | '\u{FEFF}' // zero-width no-break space
        | '\u{061C}' // Arabic letter mark
        | '\u{180E}' // Mongolian vowel separator
    )
}

/// A name people see (display names, community, group and channel names): 1–`max` characters
/// after trimming, no control or invisible characters.
pub fn shown_name(name: &str, max: usize) -> Result<(), String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    // The zero-width joiner builds emoji (👩‍💻) and is allowed there, between two symbols; between
    // letters it only makes look-alike names.
    let chars: Vec<char> = name.chars().collect();
    let stray_joiner = chars.iter().enumerate().any(|(i, c)| {
        *c == '\u{200D}'
            && !(i > 0
                && i + 1 < chars.len()
                && !chars[i - 1].is_alphanumeric()
                && !chars[i + 1].is_alphanumeric()
                && !chars[i - 1].is_ascii()
                && !chars[i + 1].is_ascii())
    });
    if stray_joiner || chars.iter().copied().any(is_invisible) {
        return Err("must not contain invisible or direction-changing characters".into());
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
    fn names_people_see_have_no_invisible_characters() {
        for (input, ok) in [
            ("Ann", true),
            ("Ann Lee", true),
            ("Zoë", true),
            ("\u{202E}gpj.exe", false),     // right-to-left override
            ("Ann\u{200B}", false),         // zero-width space
            ("A\u{2066}nn\u{2069}", false), // isolates
            ("\u{FEFF}Ann", false),
            ("Ann\u{200D}Lee", false),  // zero-width joiner between letters
            ("Ann 👩\u{200D}💻", true), // …but building an emoji
            ("\u{200D}Ann", false),
            ("A\u{0007}", false),
        ] {
            check(display_name, input, ok);
        }
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
