//! Slash commands typed in the composer: what each one sends, and the list shown while typing one.
//! They are turned into text here, before encryption: the server sees only ciphertext, as for any
//! message.

/// A command as the list shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    pub name: &'static str,
    /// What follows the name, as a hint ("" for nothing).
    pub args: &'static str,
    pub about: &'static str,
}

pub const COMMANDS: &[Command] = &[
    Command { name: "me", args: "action", about: "Say what you do: \"* Alice waves\"" },
    Command { name: "poll", args: "[question | option | option …]", about: "Ask a question with 2 to 10 answers" },
    Command { name: "schedule", args: "30s|10m|2h|1d message", about: "Send it later (encrypted now)" },
    Command { name: "shrug", args: "[message]", about: "Append ¯\\_(ツ)_/¯" },
    Command { name: "spoiler", args: "message", about: "Hide the message until it is clicked" },
    Command { name: "tableflip", args: "[message]", about: "Append (╯°□°)╯︵ ┻━┻" },
    Command { name: "unflip", args: "[message]", about: "Append ┬─┬ノ( º _ ºノ)" },
];

/// The shrug, written so that Markdown shows `¯\_(ツ)_/¯`.
pub const SHRUG: &str = "¯\\\\\\_(ツ)_/¯";

/// Starts a message that is an action ("/me waves"): kept in the text, shown as "* Alice waves".
pub const ACTION: &str = "/me ";

/// A message shown hidden until clicked: `||text||`.
pub fn spoiler(body: &str) -> Option<&str> {
    body.strip_prefix("||").and_then(|b| b.strip_suffix("||")).filter(|b| !b.trim().is_empty())
}

/// Whether a message is only a few emoji (shown large): at most 8 pictographs, with their joiners,
/// variation selectors, skin tones and tags, and spaces.
pub fn emoji_only(body: &str) -> bool {
    let mut pictographs = 0;
    for c in body.chars().filter(|c| !c.is_whitespace()) {
        match u32::from(c) {
            // Joiners, presentation selectors, keycap, tags: parts of one emoji.
            0x200D | 0xFE0E | 0xFE0F | 0x20E3 | 0xE0020..=0xE007F => {}
            0x1F000..=0x1FAFF
            | 0x2600..=0x27BF
            | 0x2300..=0x23FF
            | 0x2B00..=0x2BFF
            | 0x2190..=0x21FF
            | 0x25A0..=0x25FF
            | 0x3030
            | 0x303D
            | 0x3297
            | 0x3299
            | 0xA9
            | 0xAE
            | 0x203C
            | 0x2049
            | 0x2122
            | 0x2139
            | 0x24C2 => pictographs += 1,
            _ => return false,
        }
    }
    (1..=8).contains(&pictographs)
}

/// The commands the draft may be the start of: while it is "/" and a name without a space yet.
pub fn matching(draft: &str) -> Vec<Command> {
    let Some(typed) = draft.strip_prefix('/') else { return vec![] };
    if typed.contains(char::is_whitespace) || typed.starts_with('/') {
        return vec![];
    }
    COMMANDS.iter().filter(|c| c.name.starts_with(&typed.to_lowercase())).copied().collect()
}

/// What follows `/poll` when the draft is that command (possibly nothing).
pub fn poll_args(text: &str) -> Option<&str> {
    let rest = text.trim_start().strip_prefix('/')?;
    let (name, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    name.eq_ignore_ascii_case("poll").then(|| args.trim())
}

/// When the draft is `/schedule <delay> <message>`: the delay in seconds and the message; what
/// to type instead when the command is incomplete. `None` when the draft is not that command.
pub fn schedule(text: &str) -> Option<Result<(u64, &str), String>> {
    let rest = text.trim_start().strip_prefix('/')?;
    let (name, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !name.eq_ignore_ascii_case("schedule") {
        return None;
    }
    const HOW: &str = "Say when, then the message: \"/schedule 30m Don't forget the milk\" (s, m, h or d).";
    let args = args.trim_start();
    let (delay, message) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
    let unit = match delay.chars().last() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3_600,
        Some('d') => 86_400,
        _ => return Some(Err(HOW.to_owned())),
    };
    let Ok(n) = delay[..delay.len() - 1].parse::<u64>() else { return Some(Err(HOW.to_owned())) };
    let message = message.trim();
    if message.is_empty() || n == 0 {
        return Some(Err(HOW.to_owned()));
    }
    Some(Ok((n.saturating_mul(unit), message)))
}

/// What the composer sends for `text`: the text itself, or a command's result. A known command
/// missing what it needs is refused with what to type; anything else (including "/r/rust" or
/// "/usr/bin") goes as typed, and "//" sends a message that starts with "/".
pub fn apply(text: &str) -> Result<String, String> {
    let Some(rest) = text.strip_prefix('/') else { return Ok(text.to_owned()) };
    if let Some(literal) = rest.strip_prefix('/') {
        return Ok(format!("/{literal}"));
    }
    let (name, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let args = args.trim();
    let append = |face: &str| Ok(if args.is_empty() { face.to_owned() } else { format!("{args} {face}") });
    match name.to_lowercase().as_str() {
        // The backslash and the first "_" escaped, so that Markdown shows the face as typed.
        "shrug" => append(SHRUG),
        "tableflip" => append("(╯°□°)╯︵ ┻━┻"),
        "unflip" => append("┬─┬ノ( º _ ºノ)"),
        "me" if args.is_empty() => Err("Say what you do after /me, as in \"/me waves\".".to_owned()),
        "me" => Ok(format!("{ACTION}{args}")),
        "spoiler" if args.is_empty() => Err("Write the hidden text after /spoiler.".to_owned()),
        "spoiler" => Ok(format!("||{args}||")),
        _ => Ok(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_turn_into_text() {
        assert_eq!(apply("hello").unwrap(), "hello");
        assert_eq!(apply("/shrug").unwrap(), SHRUG);
        assert_eq!(crate::markdown::plain(SHRUG), "¯\\_(ツ)_/¯", "shown as typed");
        assert_eq!(apply("/shrug  no idea ").unwrap(), format!("no idea {SHRUG}"));
        assert_eq!(apply("/SHRUG ok").unwrap(), format!("ok {SHRUG}"), "names are not case-sensitive");
        assert_eq!(apply("/tableflip").unwrap(), "(╯°□°)╯︵ ┻━┻");
        assert_eq!(apply("/me waves\ntwice").unwrap(), "/me waves\ntwice");
        assert_eq!(apply("/spoiler the end").unwrap(), "||the end||");
        assert_eq!(spoiler(&apply("/spoiler the end").unwrap()), Some("the end"));
        assert!(apply("/me").unwrap_err().contains("/me waves"));
        assert!(apply("/spoiler   ").is_err());
        // Not commands: sent as typed; "//" escapes.
        assert_eq!(apply("/r/rust is nice").unwrap(), "/r/rust is nice");
        assert_eq!(apply("/usr/bin/env").unwrap(), "/usr/bin/env");
        assert_eq!(apply("//shrug").unwrap(), "/shrug");
    }

    #[test]
    fn schedule_takes_a_delay_and_a_message() {
        assert_eq!(schedule("/schedule 30m milk"), Some(Ok((1_800, "milk"))));
        assert_eq!(schedule("/schedule 10s  a b "), Some(Ok((10, "a b"))));
        assert_eq!(schedule("/Schedule 2d x"), Some(Ok((172_800, "x"))));
        for bad in ["/schedule", "/schedule 30m", "/schedule soon milk", "/schedule 0m milk", "/schedule 5y milk"] {
            assert!(schedule(bad).is_some_and(|r| r.is_err()), "{bad}");
        }
        assert_eq!(schedule("/shrug"), None);
        assert_eq!(schedule("hello"), None);
    }

    #[test]
    fn poll_is_a_command_of_its_own() {
        assert_eq!(poll_args("/poll"), Some(""));
        assert_eq!(poll_args("/Poll Lunch? | a | b"), Some("Lunch? | a | b"));
        assert_eq!(poll_args("/polls"), None);
        assert_eq!(poll_args("poll"), None);
    }

    #[test]
    fn the_list_follows_what_is_typed() {
        let names = |d: &str| matching(d).into_iter().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(names("/"), ["me", "poll", "schedule", "shrug", "spoiler", "tableflip", "unflip"]);
        assert_eq!(names("/s"), ["schedule", "shrug", "spoiler"]);
        assert_eq!(names("/SP"), ["spoiler"]);
        assert!(names("/shrug ").is_empty(), "a name and a space: the list is done");
        assert!(names("hello").is_empty() && names("//").is_empty() && names("/x").is_empty());
    }

    #[test]
    fn a_few_emoji_alone_are_shown_large() {
        for big in ["🎉", "🎉🎉 🎉", "👍🏽", "👨‍👩‍👧", "❤️", "🇫🇷", "☕"] {
            assert!(emoji_only(big), "{big}");
        }
        for normal in ["", "  ", "ok 🎉", "🎉!", "1️⃣", ":)", "🎉🎉🎉🎉🎉🎉🎉🎉🎉"] {
            assert!(!emoji_only(normal), "{normal:?}");
        }
    }

    #[test]
    fn spoilers_need_something_hidden() {
        assert_eq!(spoiler("||x||"), Some("x"));
        assert_eq!(spoiler("||  ||"), None);
        assert_eq!(spoiler("||"), None);
        assert_eq!(spoiler("|x|"), None);
    }
}
