//! The emoji catalog: what the picker and `:shortcode:` completion offer. The server builds it
//! from a maintained crate (Unicode CLDR names, GitHub's gemoji shortcodes) and the browser loads
//! it the first time it is needed, so the data costs the WASM bundle nothing. Search runs here,
//! on both sides, in one place.

use serde::{Deserialize, Serialize};

/// Every emoji offered, by group, in Unicode's order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmojiCatalog {
    pub groups: Vec<EmojiGroup>,
}

/// A group of the picker ("Smileys & emotion", "Flags" …).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmojiGroup {
    pub name: String,
    /// The group's emoji; short keys, as the catalog is ~1,900 of them.
    #[serde(rename = "e")]
    pub emoji: Vec<EmojiInfo>,
}

/// One emoji: the text itself, its name and its shortcodes (without the colons).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmojiInfo {
    #[serde(rename = "e")]
    pub emoji: String,
    #[serde(rename = "n")]
    pub name: String,
    #[serde(rename = "s", default, skip_serializing_if = "Vec::is_empty")]
    pub shortcodes: Vec<String>,
}

/// The longest query worth searching for (no name or shortcode is longer).
pub const MAX_QUERY: usize = 64;

impl EmojiCatalog {
    pub fn all(&self) -> impl Iterator<Item = &EmojiInfo> {
        self.groups.iter().flat_map(|g| g.emoji.iter())
    }

    /// The emoji `query` names, best first, at most `limit`: a shortcode that is the query, then
    /// one that starts with it, then a name word that starts with it, then a name or shortcode
    /// containing it; the shortest match first within each rank (`fir`: fire before
    /// fire_engine), then in catalog order. Case and `_`/space do not matter.
    pub fn search(&self, query: &str, limit: usize) -> Vec<&EmojiInfo> {
        let query: String = query.trim().trim_matches(':').to_lowercase().replace(' ', "_");
        if query.is_empty() || query.len() > MAX_QUERY {
            return vec![];
        }
        let spaced = query.replace('_', " ");
        let rank = |e: &EmojiInfo| -> Option<(u8, usize)> {
            let name = e.name.to_lowercase();
            let shortest = |codes: &mut dyn Iterator<Item = &String>| codes.map(String::len).min();
            if e.shortcodes.contains(&query) {
                Some((0, 0))
            } else if let Some(len) = shortest(&mut e.shortcodes.iter().filter(|s| s.starts_with(&query))) {
                Some((1, len))
            } else if name.starts_with(&spaced) || name.split([' ', '-']).any(|w| w.starts_with(&spaced)) {
                Some((2, name.len()))
            } else if name.contains(&spaced) || e.shortcodes.iter().any(|s| s.contains(&query)) {
                Some((3, name.len()))
            } else {
                None
            }
        };
        let mut found: Vec<((u8, usize), usize, &EmojiInfo)> =
            self.all().enumerate().filter_map(|(i, e)| rank(e).map(|r| (r, i, e))).collect();
        found.sort_by_key(|(r, i, _)| (*r, *i));
        found.into_iter().take(limit).map(|(_, _, e)| e).collect()
    }

    /// The emoji whose shortcode is exactly `code` (without colons).
    pub fn by_shortcode(&self, code: &str) -> Option<&EmojiInfo> {
        self.all().find(|e| e.shortcodes.iter().any(|s| s == code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(emoji: &str, name: &str, codes: &[&str]) -> EmojiInfo {
        EmojiInfo {
            emoji: emoji.into(),
            name: name.into(),
            shortcodes: codes.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    #[test]
    fn search_ranks_shortcodes_then_names() {
        let catalog = EmojiCatalog {
            groups: vec![EmojiGroup {
                name: "Test".into(),
                emoji: vec![
                    info("😄", "grinning face with smiling eyes", &["smile"]),
                    info("🙂", "slightly smiling face", &["slightly_smiling_face"]),
                    info("😺", "grinning cat", &["smiley_cat"]),
                    info("🚒", "fire engine", &["fire_engine"]),
                    info("🔥", "fire", &["fire"]),
                    info("🎉", "party popper", &["tada"]),
                ],
            }],
        };
        let found = |q: &str| catalog.search(q, 10).into_iter().map(|e| e.emoji.as_str()).collect::<Vec<_>>();
        assert_eq!(found("smile"), ["😄", "😺"], "exact, then prefix");
        assert_eq!(found("smil"), ["😄", "😺", "🙂"], "shortcodes, then a name word");
        assert_eq!(found(":Fire:"), ["🔥", "🚒"]);
        assert_eq!(found("fir"), ["🔥", "🚒"], "the shortest first");
        assert_eq!(found("party pop"), ["🎉"], "a name with spaces");
        assert_eq!(found("popper"), ["🎉"]);
        assert!(found("").is_empty() && found("zzz").is_empty());
        assert!(found(&"a".repeat(MAX_QUERY + 1)).is_empty());
        assert_eq!(catalog.search("s", 2).len(), 2, "bounded");
        assert_eq!(catalog.by_shortcode("tada").map(|e| e.emoji.as_str()), Some("🎉"));
    }

    #[test]
    fn wire_is_compact() {
        let g = EmojiGroup {
            name: "G".into(),
            emoji: vec![info("🔥", "fire", &["fire"]), info("🫠", "melting face", &[])],
        };
        assert_eq!(
            serde_json::to_string(&g).unwrap(),
            r#"{"name":"G","e":[{"e":"🔥","n":"fire","s":["fire"]},{"e":"🫠","n":"melting face"}]}"#
        );
    }
}
