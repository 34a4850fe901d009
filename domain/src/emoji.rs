//! The emoji catalog, built once from the `emojis` crate (Unicode CLDR order and names, gemoji
//! shortcodes): default skin tones only, and only emoji of Unicode 15.0 and older, which the
//! emoji fonts of today's phones and desktops draw (newer ones would show as boxes).

use protocol::model::emoji::{EmojiCatalog, EmojiGroup, EmojiInfo};
use std::sync::OnceLock;

fn group_name(group: emojis::Group) -> &'static str {
    use emojis::Group::*;
    match group {
        SmileysAndEmotion => "Smileys & emotion",
        PeopleAndBody => "People & body",
        AnimalsAndNature => "Animals & nature",
        FoodAndDrink => "Food & drink",
        TravelAndPlaces => "Travel & places",
        Activities => "Activities",
        Objects => "Objects",
        Symbols => "Symbols",
        Flags => "Flags",
    }
}

/// The catalog (built on first use, then shared).
pub fn catalog() -> &'static EmojiCatalog {
    static CATALOG: OnceLock<EmojiCatalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let newest = emojis::UnicodeVersion::new(15, 0);
        let groups = emojis::Group::iter()
            .map(|group| EmojiGroup {
                name: group_name(group).to_owned(),
                emoji: group
                    .emojis()
                    .filter(|e| e.unicode_version() <= newest)
                    .map(|e| EmojiInfo {
                        emoji: e.as_str().to_owned(),
                        name: e.name().to_owned(),
                        shortcodes: e.shortcodes().map(str::to_owned).collect(),
                    })
                    .collect(),
            })
            .collect();
        EmojiCatalog { groups }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_catalog_has_every_group_and_finds_by_shortcode() {
        let c = super::catalog();
        assert_eq!(c.groups.len(), 9);
        assert!(c.all().count() > 1500, "{}", c.all().count());
        assert_eq!(c.by_shortcode("tada").map(|e| e.emoji.as_str()), Some("🎉"));
        assert_eq!(c.search("thumbsup", 1)[0].emoji, "👍");
        // Nothing newer than Unicode 15.0 (🫨 "shaking face" is 15.0; 🙂‍↕️ "head shaking vertically" is 15.1).
        assert!(c.all().any(|e| e.emoji == "🫨"));
        assert!(!c.all().any(|e| e.name == "head shaking vertically"));
    }
}
