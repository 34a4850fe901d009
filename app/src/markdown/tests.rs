use super::*;
use Inline::*;

fn t(s: &str) -> Inline {
    Text(s.to_owned())
}

fn para(text: &str) -> Vec<Inline> {
    match parse(text).as_slice() {
        [Block::Paragraph(inlines)] => inlines.clone(),
        other => panic!("{text:?} is not one paragraph: {other:?}"),
    }
}

fn link(href: &str, label: &str) -> Inline {
    Link { href: href.to_owned(), label: label.to_owned() }
}

#[test]
fn inline_styles() {
    let cases: &[(&str, Vec<Inline>)] = &[
        ("plain text", vec![t("plain text")]),
        ("**bold** and *it*", vec![Strong(vec![t("bold")]), t(" and "), Emphasis(vec![t("it")])]),
        (
            "_it_ __under__ ~~gone~~",
            vec![Emphasis(vec![t("it")]), t(" "), Underline(vec![t("under")]), t(" "), Strike(vec![t("gone")])],
        ),
        ("***both***", vec![Strong(vec![Emphasis(vec![t("both")])])]),
        ("**bold *and it***", vec![Strong(vec![t("bold "), Emphasis(vec![t("and it")])])]),
        ("the end is ||near||", vec![t("the end is "), Spoiler(vec![t("near")])]),
        ("a `b **c**` d", vec![t("a "), Code("b **c**".into()), t(" d")]),
        ("`` a ` b ``", vec![Code("a ` b".into())]),
        ("line one\nline two", vec![t("line one"), Break, t("line two")]),
        ("**across\nlines**", vec![Strong(vec![t("across"), Break, t("lines")])]),
    ];
    for (input, want) in cases {
        assert_eq!(&para(input), want, "{input:?}");
    }
}

#[test]
fn marks_that_are_not_styles_stay_text() {
    for input in [
        "2 * 3 * 4",
        "snake_case_name and __init__s",
        "** not bold **",
        "a single ~tilde~ and |bar|",
        "unclosed **bold",
        "unclosed `code",
        "****",
        "a ||  || b",
    ] {
        let got = para(input);
        assert!(got.iter().all(|i| matches!(i, Text(_))), "{input:?} gave styles: {got:?}");
        assert_eq!(plain(input), input.split_whitespace().collect::<Vec<_>>().join(" "), "nothing is lost");
    }
    assert_eq!(para(r"\*not it\* \`x\` \\"), [t(r"*not it* `x` \")]);
}

#[test]
fn links() {
    let cases: &[(&str, Vec<Inline>)] = &[
        (
            "see https://example.org/a_b.",
            vec![t("see "), link("https://example.org/a_b", "https://example.org/a_b"), t(".")],
        ),
        (
            "(https://en.wikipedia.org/wiki/Rust_(language))",
            vec![
                t("("),
                link("https://en.wikipedia.org/wiki/Rust_(language)", "https://en.wikipedia.org/wiki/Rust_(language)"),
                t(")"),
            ],
        ),
        ("[the docs](https://docs.rs/x) now", vec![link("https://docs.rs/x", "the docs"), t(" now")]),
        ("[mail](mailto:a@b.c)", vec![link("mailto:a@b.c", "mail")]),
        // A label that looks like an address shows the real one.
        ("[https://bank.example](https://evil.example)", vec![link("https://evil.example", "https://evil.example")]),
        ("nohttps://x.y", vec![t("nohttps://x.y")]),
        ("https://", vec![t("https://")]),
    ];
    for (input, want) in cases {
        assert_eq!(&para(input), want, "{input:?}");
    }
}

#[test]
fn blocks() {
    use Block::*;
    assert_eq!(parse("```rust\nfn main() {}\n```"), [Code { lang: Some("rust".into()), text: "fn main() {}".into() }]);
    assert_eq!(
        parse("before\n```\n<b>raw</b>\n  indented\n```\nafter"),
        [
            Paragraph(vec![t("before")]),
            Code { lang: None, text: "<b>raw</b>\n  indented".into() },
            Paragraph(vec![t("after")]),
        ]
    );
    assert_eq!(parse("```not closed\nstill text"), [Paragraph(vec![t("```not closed"), Break, t("still text")])]);
    assert_eq!(
        parse("> quoted **bold**\n> more\nafter"),
        [
            Quote(vec![Paragraph(vec![t("quoted "), Strong(vec![t("bold")]), Break, t("more")])]),
            Paragraph(vec![t("after")]),
        ]
    );
    assert_eq!(
        parse("- one\n- *two*\n  continued\n1. first"),
        [
            List { start: None, items: vec![vec![t("one")], vec![Emphasis(vec![t("two")]), Break, t("continued")]] },
            List { start: Some(1), items: vec![vec![t("first")]] },
        ]
    );
    assert_eq!(parse("3. three\n4. four"), [List { start: Some(3), items: vec![vec![t("three")], vec![t("four")]] }]);
    assert_eq!(parse("# Title\ntext"), [Heading(1, vec![t("Title")]), Paragraph(vec![t("text")])]);
    // Chat, not CommonMark: no setext headings, no indented code, no headings without a space.
    assert_eq!(parse("text\n---"), [Paragraph(vec![t("text"), Break, t("---")])]);
    assert_eq!(parse("    four spaces"), [Paragraph(vec![t("    four spaces")])]);
    assert_eq!(parse("#hashtag"), [Paragraph(vec![t("#hashtag")])]);
    assert_eq!(parse("a\n\n\nb"), [Paragraph(vec![t("a"), Break, Break, Break, t("b")])], "blank lines are kept");
}

/// The deepest nesting of blocks and of inline styles.
fn depth(blocks: &[Block]) -> (usize, usize) {
    fn inline_depth(items: &[Inline]) -> usize {
        items
            .iter()
            .map(|i| match i {
                Strong(c) | Emphasis(c) | Underline(c) | Strike(c) | Spoiler(c) => 1 + inline_depth(c),
                _ => 0,
            })
            .max()
            .unwrap_or(0)
    }
    let mut deepest = (0, 0);
    for b in blocks {
        let (q, i) = match b {
            Block::Quote(inner) => {
                let (q, i) = depth(inner);
                (q + 1, i)
            }
            Block::Paragraph(i) | Block::Heading(_, i) => (0, inline_depth(i)),
            Block::List { items, .. } => (0, items.iter().map(|i| inline_depth(i)).max().unwrap_or(0)),
            Block::Code { .. } => (0, 0),
        };
        deepest = (deepest.0.max(q), deepest.1.max(i));
    }
    deepest
}

/// Every piece of text the parse produced, to check that hostile input comes out as text.
fn texts(blocks: &[Block]) -> Vec<String> {
    fn inline(out: &mut Vec<String>, items: &[Inline]) {
        for i in items {
            match i {
                Text(t) | Code(t) => out.push(t.clone()),
                Link { label, .. } => out.push(label.clone()),
                Mention(name) => out.push(format!("@{name}")),
                Strong(c) | Emphasis(c) | Underline(c) | Strike(c) | Spoiler(c) => inline(out, c),
                Break => {}
            }
        }
    }
    let mut out = Vec::new();
    for b in blocks {
        match b {
            Block::Paragraph(i) | Block::Heading(_, i) => inline(&mut out, i),
            Block::Code { text, .. } => out.push(text.clone()),
            Block::Quote(inner) => out.extend(texts(inner)),
            Block::List { items, .. } => items.iter().for_each(|i| inline(&mut out, i)),
        }
    }
    out
}

/// Every link address the parse produced.
fn hrefs(blocks: &[Block]) -> Vec<String> {
    fn inline(out: &mut Vec<String>, items: &[Inline]) {
        for i in items {
            match i {
                Link { href, .. } => out.push(href.clone()),
                Strong(c) | Emphasis(c) | Underline(c) | Strike(c) | Spoiler(c) => inline(out, c),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    for b in blocks {
        match b {
            Block::Paragraph(i) | Block::Heading(_, i) => inline(&mut out, i),
            Block::Quote(inner) => out.extend(hrefs(inner)),
            Block::List { items, .. } => items.iter().for_each(|i| inline(&mut out, i)),
            Block::Code { .. } => {}
        }
    }
    out
}

#[test]
fn hostile_input_is_text_bounded_and_linear() {
    let k64 = 64 * 1024;
    let cases: Vec<(&str, String)> = vec![
        ("script tag", "<script>alert(1)</script> <img src=x onerror=alert(1)>".into()),
        ("javascript link", "[click](javascript:alert(1)) [x](JaVaScRiPt:alert(1)) [d](data:text/html,<b>)".into()),
        ("file link", "[f](file:///etc/passwd) [v](vbscript:x)".into()),
        ("deep quotes", "> ".repeat(5_000) + "bottom"),
        ("backticks", "`".repeat(k64)),
        ("backtick pairs", "`a".repeat(k64 / 2)),
        ("stars", "*".repeat(k64)),
        ("unclosed openers", "**a ".repeat(k64 / 4)),
        ("alternating marks", "*_~~||".repeat(k64 / 6)),
        ("nested styles", "**_~~||__".repeat(2_000) + "x"),
        ("link openers", "[".repeat(k64)),
        ("link targets", "](".repeat(k64 / 2)),
        ("labels and targets", "[a](".repeat(k64 / 4)),
        ("addresses", "http://".repeat(k64 / 7)),
        ("long address", format!("https://a.b/{}", "x".repeat(k64))),
        ("parentheses", format!("https://a.b/{}", ")".repeat(k64))),
        ("fences", "```\n".repeat(k64 / 4)),
        ("unclosed fences", "```a\nb\n".repeat(k64 / 7)),
        ("blank lines", "\n".repeat(k64)),
        ("list items", "- x\n".repeat(k64 / 4)),
        ("escapes", "\\".repeat(k64)),
        ("mixed", "> - **`[x](https://a)`** ||~~_y_~~||\n".repeat(k64 / 40)),
    ];
    for (name, input) in &cases {
        let started = std::time::Instant::now();
        let blocks = parse(input);
        let took = started.elapsed();
        let (quotes, styles) = depth(&blocks);
        assert!(quotes <= MAX_QUOTE_DEPTH && styles <= MAX_INLINE_DEPTH + 1, "{name}: nested {quotes}/{styles}");
        for href in hrefs(&blocks) {
            assert!(
                href.starts_with("https://") || href.starts_with("http://") || href.starts_with("mailto:"),
                "{name}: {href}"
            );
            assert!(href.len() <= MAX_URL_BYTES, "{name}");
        }
        // Nothing is made of the text but text: its characters are all still there, as text.
        let kept: usize = texts(&blocks).iter().map(|t| t.chars().filter(|c| !c.is_whitespace()).count()).sum();
        let marks = input.chars().filter(|c| "*_~|`>-#[]()\\".contains(*c) || c.is_whitespace()).count();
        assert!(kept + marks >= input.chars().filter(|c| !c.is_whitespace()).count(), "{name}: text lost");
        // Not a timing assertion (those live in bench/): a quadratic parse of 64 KiB takes
        // seconds, which this message makes visible when it happens.
        if took.as_millis() > 500 {
            eprintln!("warning: {name} took {took:?}");
        }
    }
    let script = parse("<script>alert(1)</script>");
    assert_eq!(texts(&script), ["<script>alert(1)</script>"]);
    assert!(hrefs(&parse("[click](javascript:alert(1))")).is_empty());
}

#[test]
fn mentions() {
    let m = |s: &str| Mention(s.to_owned());
    assert_eq!(para("hi @Bob.Stone, and @here."), [t("hi "), m("bob.stone"), t(", and "), m("here"), t(".")]);
    assert_eq!(para("**@ann**"), [Strong(vec![m("ann")])]);
    for not in ["mail@example.org", "@ab", "@", "x_@bob", "@@", &format!("@{}", "a".repeat(33))] {
        assert!(para(not).iter().all(|i| matches!(i, Text(_))), "{not:?}");
    }
    assert_eq!(
        super::mentions("@ann `@bob` @ann\n> @carol\n```\n@dave\n```"),
        ["ann", "carol"],
        "not in code, each once"
    );
    assert!(super::mentions("no one").is_empty());
}

#[test]
fn previews_drop_the_marks() {
    assert_eq!(plain("**bold** `code` [docs](https://d.rs)\n> quoted"), "bold code docs quoted");
    assert_eq!(plain("the end: ||butler||"), "the end: (spoiler)");
}
