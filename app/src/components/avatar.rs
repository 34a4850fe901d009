//! A person's avatar: their initials on a colour of their own (pictures come with files).

use leptos::prelude::*;
use uuid::Uuid;

/// Background colours with white text at least 4.5:1 against each (WCAG AA), written out in full
/// so that the stylesheet generator finds them.
const COLOURS: [&str; 8] = [
    "bg-red-700",
    "bg-orange-700",
    "bg-amber-700",
    "bg-green-700",
    "bg-teal-700",
    "bg-sky-700",
    "bg-indigo-600",
    "bg-fuchsia-700",
];

/// The first letter of the first two words of a name, upper-cased ("?" for a name without letters).
pub fn initials(name: &str) -> String {
    let firsts: Vec<char> =
        name.split_whitespace().filter_map(|w| w.chars().find(|c| c.is_alphanumeric())).take(2).collect();
    if firsts.is_empty() { "?".to_owned() } else { firsts.into_iter().flat_map(char::to_uppercase).collect() }
}

/// A person's colour: the same on every device, from their id.
pub fn colour(user: Uuid) -> &'static str {
    let folded = user.as_bytes().iter().fold(0u8, |a, b| a.wrapping_mul(31).wrapping_add(*b));
    COLOURS[usize::from(folded) % COLOURS.len()]
}

/// A round avatar, `size` classes giving its size and text size. Decorative: the name is beside it.
#[component]
pub fn Avatar(user: Uuid, #[prop(into)] name: Signal<String>, size: &'static str) -> impl IntoView {
    view! {
        <span
            class=format!(
                "inline-flex shrink-0 select-none items-center justify-center rounded-full font-semibold text-white {size} {}",
                colour(user),
            )
            aria-hidden="true"
            data-testid="avatar"
        >
            {move || name.with(|n| initials(n))}
        </span>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_take_two_words_and_skip_what_is_not_a_letter() {
        assert_eq!(initials("Alice Liddell"), "AL");
        assert_eq!(initials("bob"), "B");
        assert_eq!(initials("  carol   ann   smith "), "CA");
        assert_eq!(initials("(dave) ~eve"), "DE");
        assert_eq!(initials("élodie"), "É");
        assert_eq!(initials("🙂 ✨"), "?");
        assert_eq!(initials(""), "?");
    }

    #[test]
    fn a_person_keeps_their_colour() {
        let id = Uuid::new_v4();
        assert_eq!(colour(id), colour(id));
        let spread: std::collections::HashSet<_> = (0..200).map(|_| colour(Uuid::new_v4())).collect();
        assert!(spread.len() >= 6, "ids spread over the colours: {spread:?}");
    }
}
