//! The Markdown of chat messages, parsed in the browser after decryption into a small tree that the
//! timeline turns into DOM nodes (never HTML text), so nothing a sender writes can become markup.
//!
//! It is chat Markdown, not CommonMark: a single newline is a line break; there are no setext
//! headings ("text" over "---"), no indented code blocks, no HTML and no images (a receiver fetches
//! nothing a sender names). What it knows: `**bold**`, `*italic*` / `_italic_`, `__underline__`,
//! `~~strike~~`, `||spoiler||`, `` `code` ``, fenced code blocks with a language, `> quotes`,
//! `- lists` and `1. lists`, `#` headings, `[label](https://…)` and bare `https://…` links, and
//! `\` escapes.
//!
//! Hostile input is bounded: every step is linear in the text (closing delimiters are looked up in
//! lists built once, never searched for again from each opener), quotes nest at most
//! [`MAX_QUOTE_DEPTH`] deep and inline styles at most [`MAX_INLINE_DEPTH`]; past that the marks are
//! kept as text. A hand-written parser rather than a CommonMark crate, for those semantics and
//! for the bundle (see ARCHITECTURE.md).

pub mod highlight;

/// Quotes inside quotes, at most.
pub const MAX_QUOTE_DEPTH: usize = 3;
/// Styles inside styles, at most.
pub const MAX_INLINE_DEPTH: usize = 6;
/// A link's address, at most (longer ones stay text).
pub const MAX_URL_BYTES: usize = 2048;

/// A block of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block {
    /// Lines of text; their breaks are [`Inline::Break`].
    Paragraph(Vec<Inline>),
    /// A fenced code block, verbatim; `lang` as written after the fence (lowercased).
    Code {
        lang: Option<String>,
        text: String,
    },
    Quote(Vec<Block>),
    /// Items of a list; `start` is the first number of a numbered list.
    List {
        start: Option<u32>,
        items: Vec<Vec<Inline>>,
    },
    /// `#`, `##` or `###`.
    Heading(u8, Vec<Inline>),
}

/// Text and its styles inside a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inline {
    Text(String),
    Break,
    Code(String),
    Strong(Vec<Inline>),
    Emphasis(Vec<Inline>),
    Underline(Vec<Inline>),
    Strike(Vec<Inline>),
    Spoiler(Vec<Inline>),
    /// A link to `href` (http, https or mailto only); `label` is what shows.
    Link {
        href: String,
        label: String,
    },
    /// `@name`: a username (lowercased), or `here` / `everyone`.
    Mention(String),
}

/// `@here` and `@everyone`: everyone in the conversation (who may use them is the readers' check).
pub const EVERYONE: [&str; 2] = ["here", "everyone"];

/// Parses a message.
pub fn parse(text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    blocks(&lines, 0)
}

/// The text of a message without its marks, for previews (a quoted reply, a notification).
pub fn plain(text: &str) -> String {
    fn inline(out: &mut String, items: &[Inline]) {
        for i in items {
            match i {
                Inline::Text(t) | Inline::Code(t) => out.push_str(t),
                Inline::Break => out.push(' '),
                Inline::Strong(c) | Inline::Emphasis(c) | Inline::Underline(c) | Inline::Strike(c) => inline(out, c),
                Inline::Spoiler(_) => out.push_str("(spoiler)"),
                Inline::Link { label, .. } => out.push_str(label),
                Inline::Mention(name) => {
                    out.push('@');
                    out.push_str(name);
                }
            }
        }
    }
    fn block(out: &mut String, blocks: &[Block]) {
        for b in blocks {
            if !out.is_empty() {
                out.push(' ');
            }
            match b {
                Block::Paragraph(i) | Block::Heading(_, i) => inline(out, i),
                Block::Code { text, .. } => out.push_str(text),
                Block::Quote(inner) => block(out, inner),
                Block::List { items, .. } => {
                    for item in items {
                        inline(out, item);
                        out.push(' ');
                    }
                }
            }
        }
    }
    let mut out = String::new();
    block(&mut out, &parse(text));
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The names a message mentions (`@name`, lowercased, each once, not in code), in order.
pub fn mentions(text: &str) -> Vec<String> {
    fn inline(out: &mut Vec<String>, items: &[Inline]) {
        for i in items {
            match i {
                Inline::Mention(name) if !out.contains(name) => out.push(name.clone()),
                Inline::Strong(c)
                | Inline::Emphasis(c)
                | Inline::Underline(c)
                | Inline::Strike(c)
                | Inline::Spoiler(c) => inline(out, c),
                _ => {}
            }
        }
    }
    fn block(out: &mut Vec<String>, blocks: &[Block]) {
        for b in blocks {
            match b {
                Block::Paragraph(i) | Block::Heading(_, i) => inline(out, i),
                Block::Quote(inner) => block(out, inner),
                Block::List { items, .. } => items.iter().for_each(|i| inline(out, i)),
                Block::Code { .. } => {}
            }
        }
    }
    let mut out = Vec::new();
    // Cheap for the many messages that mention nobody.
    if text.contains('@') {
        block(&mut out, &parse(text));
    }
    out
}

fn blocks(lines: &[&str], depth: usize) -> Vec<Block> {
    // The last line that can close a fence: an opener after it is not closed, found in O(1).
    let last_close = lines.iter().rposition(|l| l.trim_end().ends_with("```"));
    let mut out = Vec::new();
    let mut para: Vec<&str> = Vec::new();
    let flush = |para: &mut Vec<&str>, out: &mut Vec<Block>| {
        // Blank lines around blocks are spacing, not text.
        let first = para.iter().position(|l| !l.trim().is_empty());
        let last = para.iter().rposition(|l| !l.trim().is_empty());
        if let (Some(first), Some(last)) = (first, last) {
            out.push(Block::Paragraph(inlines(&para[first..=last].join("\n"))));
        }
        para.clear();
    };
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if let Some(after) = trimmed.strip_prefix("```").filter(|a| !a.contains("```"))
            && last_close.is_some_and(|c| c > i)
        {
            // A fence: up to the next line ending in ```, the first line may name the language.
            let after = after.trim();
            let is_lang = !after.is_empty()
                && after.len() <= 20
                && after.chars().all(|c| c.is_ascii_alphanumeric() || "+#-_.".contains(c));
            let mut text = String::new();
            if !is_lang && !after.is_empty() {
                text.push_str(after);
                text.push('\n');
            }
            let mut j = i + 1;
            loop {
                let l = lines[j];
                if let Some(last) = l.trim_end().strip_suffix("```") {
                    text.push_str(last);
                    break;
                }
                text.push_str(l);
                text.push('\n');
                j += 1;
            }
            flush(&mut para, &mut out);
            let text = text.strip_suffix('\n').unwrap_or(&text).to_owned();
            out.push(Block::Code { lang: is_lang.then(|| after.to_ascii_lowercase()), text });
            i = j + 1;
            continue;
        }
        if depth < MAX_QUOTE_DEPTH && quote_line(line).is_some() {
            flush(&mut para, &mut out);
            let mut inner = Vec::new();
            while let Some(rest) = lines.get(i).and_then(|l| quote_line(l)) {
                inner.push(rest);
                i += 1;
            }
            out.push(Block::Quote(blocks(&inner, depth + 1)));
            continue;
        }
        if let Some((start, _)) = list_item(line) {
            flush(&mut para, &mut out);
            let ordered = start.is_some();
            let mut items = Vec::new();
            while let Some((s, text)) = lines.get(i).and_then(|l| list_item(l)) {
                if s.is_some() != ordered {
                    break;
                }
                let mut item = vec![text];
                i += 1;
                // Indented lines continue the item.
                while let Some(more) = lines.get(i).filter(|l| l.starts_with("  ") && !l.trim().is_empty()) {
                    item.push(more.trim_start());
                    i += 1;
                }
                items.push(inlines(&item.join("\n")));
            }
            out.push(Block::List { start, items });
            continue;
        }
        if let Some((level, text)) = heading(line) {
            flush(&mut para, &mut out);
            out.push(Block::Heading(level, inlines(text)));
            i += 1;
            continue;
        }
        para.push(line);
        i += 1;
    }
    flush(&mut para, &mut out);
    out
}

/// The rest of a quoted line (`> text` or a lone `>`).
fn quote_line(line: &str) -> Option<&str> {
    if line == ">" {
        return Some("");
    }
    line.strip_prefix("> ")
}

/// A list item: its number (None for a bullet) and its text.
fn list_item(line: &str) -> Option<(Option<u32>, &str)> {
    for bullet in ["- ", "* ", "+ "] {
        if let Some(rest) = line.strip_prefix(bullet)
            && !rest.trim().is_empty()
        {
            return Some((None, rest));
        }
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if (1..=9).contains(&digits)
        && let Some(rest) = line[digits..].strip_prefix(". ")
        && !rest.trim().is_empty()
    {
        return Some((line[..digits].parse().ok(), rest));
    }
    None
}

fn heading(line: &str) -> Option<(u8, &str)> {
    let hashes = line.bytes().take_while(|&b| b == b'#').count();
    let rest = line[hashes..].strip_prefix(' ')?;
    ((1..=3).contains(&hashes) && !rest.trim().is_empty()).then_some((hashes as u8, rest.trim()))
}

/// An inline style mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    Star,
    Star2,
    Under,
    Under2,
    Tilde2,
    Bar2,
}

const MARKS: usize = 6;

#[derive(Debug)]
enum Tok<'a> {
    Text(&'a str),
    Break,
    Code(&'a str),
    Link { href: &'a str, label: &'a str },
    Mention(&'a str),
    Mark { mark: Mark, text: &'a str, open: bool, close: bool },
}

/// Parses the text of one block.
fn inlines(text: &str) -> Vec<Inline> {
    let toks = tokens(text);
    let mut closers: [Vec<usize>; MARKS] = Default::default();
    for (i, t) in toks.iter().enumerate() {
        if let Tok::Mark { mark, close: true, .. } = t {
            closers[*mark as usize].push(i);
        }
    }
    let mut out = Vec::new();
    styled(&toks, &closers, 0, toks.len(), 0, &mut out);
    out
}

fn push_text(out: &mut Vec<Inline>, text: &str) {
    if let Some(Inline::Text(last)) = out.last_mut() {
        last.push_str(text);
    } else if !text.is_empty() {
        out.push(Inline::Text(text.to_owned()));
    }
}

fn styled(toks: &[Tok], closers: &[Vec<usize>; MARKS], lo: usize, hi: usize, depth: usize, out: &mut Vec<Inline>) {
    let mut i = lo;
    while i < hi {
        match &toks[i] {
            Tok::Text(t) => push_text(out, t),
            Tok::Break => out.push(Inline::Break),
            Tok::Code(c) => out.push(Inline::Code((*c).to_owned())),
            Tok::Link { href, label } => {
                out.push(Inline::Link { href: (*href).to_owned(), label: (*label).to_owned() })
            }
            Tok::Mention(name) => out.push(Inline::Mention(name.to_ascii_lowercase())),
            Tok::Mark { mark, text, open, .. } => {
                let list = &closers[*mark as usize];
                let next = list.get(list.partition_point(|&c| c <= i)).copied();
                match next {
                    Some(j) if *open && depth < MAX_INLINE_DEPTH && j < hi && j > i + 1 => {
                        let mut inner = Vec::new();
                        styled(toks, closers, i + 1, j, depth + 1, &mut inner);
                        out.push(match mark {
                            Mark::Star | Mark::Under => Inline::Emphasis(inner),
                            Mark::Star2 => Inline::Strong(inner),
                            Mark::Under2 => Inline::Underline(inner),
                            Mark::Tilde2 => Inline::Strike(inner),
                            Mark::Bar2 => Inline::Spoiler(inner),
                        });
                        i = j + 1;
                        continue;
                    }
                    _ => push_text(out, text),
                }
            }
        }
        i += 1;
    }
}

/// Whether `href` may be a link: http(s) or mailto, nothing that runs or reads local files.
fn safe_href(href: &str) -> bool {
    let lower = href.get(..8).unwrap_or(href).to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("mailto:"))
        && href.len() <= MAX_URL_BYTES
        && !href.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Splits text into tokens: one pass, with code spans and link targets matched from lists built
/// beforehand.
fn tokens(text: &str) -> Vec<Tok<'_>> {
    let bytes = text.as_bytes();
    // Backtick runs, and for each the next run of the same length (its closer).
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut k = 0;
    while k < bytes.len() {
        if bytes[k] == b'`' {
            let n = bytes[k..].iter().take_while(|&&b| b == b'`').count();
            runs.push((k, n));
            k += n;
        } else if bytes[k] == b'\\' {
            k += 2;
        } else {
            k += 1;
        }
    }
    let mut closer_of: Vec<Option<usize>> = vec![None; runs.len()];
    let mut next_by_len: std::collections::HashMap<usize, usize> = Default::default();
    for (r, &(_, n)) in runs.iter().enumerate().rev() {
        closer_of[r] = next_by_len.get(&n).copied();
        next_by_len.insert(n, r);
    }
    // "](" targets, each checked once: (position of "](", end of the link or None). `stop[k]` is
    // the first ")" or space at or after k, so that no target scans the text again.
    let mut targets: Vec<(usize, Option<usize>)> = Vec::new();
    if text.contains("](") {
        let mut stop = vec![bytes.len(); bytes.len() + 1];
        for k in (0..bytes.len()).rev() {
            stop[k] = if bytes[k] == b')' || bytes[k].is_ascii_whitespace() { k } else { stop[k + 1] };
        }
        for (p, _) in text.match_indices("](") {
            let (from, end) = (p + 2, stop[p + 2]);
            let ok = bytes.get(end) == Some(&b')') && safe_href(&text[from..end]);
            targets.push((p, ok.then_some(end + 1)));
        }
    }
    let mut toks = Vec::new();
    let mut text_start = 0;
    let mut run = 0; // the next backtick run not yet passed
    let mut target = 0; // the next "](" not yet passed
    let mut i = 0;
    let prev_char = |i: usize| text[..i].chars().next_back();
    let next_char = |i: usize| text[i..].chars().next();
    macro_rules! flush {
        ($upto:expr) => {
            if text_start < $upto {
                toks.push(Tok::Text(&text[text_start..$upto]));
            }
        };
    }
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\n' => {
                flush!(i);
                toks.push(Tok::Break);
                i += 1;
                text_start = i;
            }
            b'\\' if bytes.get(i + 1).is_some_and(u8::is_ascii_punctuation) => {
                flush!(i);
                toks.push(Tok::Text(&text[i + 1..i + 2]));
                i += 2;
                text_start = i;
            }
            b'`' => {
                while runs.get(run).is_some_and(|&(p, _)| p < i) {
                    run += 1;
                }
                flush!(i);
                match runs.get(run).filter(|&&(p, _)| p == i).map(|&(_, n)| (n, closer_of[run])) {
                    Some((n, Some(c))) => {
                        let (end, _) = runs[c];
                        let inner = &text[i + n..end];
                        // One space on both sides is padding (to show a backtick at an edge).
                        let inner = match inner.strip_prefix(' ').and_then(|s| s.strip_suffix(' ')) {
                            Some(s) if !s.trim().is_empty() => s,
                            _ => inner,
                        };
                        toks.push(Tok::Code(inner));
                        i = end + n;
                        run = c + 1;
                    }
                    found => {
                        let n = found.map_or(1, |(n, _)| n);
                        toks.push(Tok::Text(&text[i..i + n]));
                        i += n;
                        run += usize::from(found.is_some());
                    }
                }
                text_start = i;
            }
            b'[' => {
                while targets.get(target).is_some_and(|&(p, _)| p < i) {
                    target += 1;
                }
                let link = targets.get(target).and_then(|&(p, end)| {
                    let label = &text[i + 1..p];
                    let end = end?;
                    (!label.trim().is_empty() && !label.contains('\n')).then_some((label, &text[p + 2..end - 1], end))
                });
                if let Some((label, href, end)) = link {
                    flush!(i);
                    // A label that looks like an address shows where the link really goes.
                    let shown = if label.contains("://") || label.starts_with("www.") { href } else { label };
                    toks.push(Tok::Link { href, label: shown });
                    i = end;
                    text_start = i;
                } else {
                    i += 1;
                }
            }
            b'h' | b'H' if prev_char(i).is_none_or(|c| !c.is_alphanumeric()) => {
                let rest = &text[i..];
                let scheme = rest.get(..8).unwrap_or(rest).to_ascii_lowercase();
                if scheme.starts_with("https://") || scheme.starts_with("http://") {
                    // Look no further than the longest address, so that text full of "http://"
                    // stays linear.
                    let mut cap = rest.len().min(MAX_URL_BYTES + 1);
                    while !rest.is_char_boundary(cap) {
                        cap -= 1;
                    }
                    let window = &rest[..cap];
                    let mut end = window.find(|c: char| c.is_whitespace() || c == '<' || c == '>').unwrap_or(cap);
                    let too_long = end > MAX_URL_BYTES;
                    // Punctuation after an address ends the sentence, not the address; a ")" is
                    // kept when the address opened one.
                    let (opened, mut closed) = (window[..end].matches('(').count(), window[..end].matches(')').count());
                    while let Some(c) = window[..end].chars().next_back() {
                        if ".,:;!?'\"*_~|".contains(c) {
                            end -= c.len_utf8();
                        } else if c == ')' && closed > opened {
                            closed -= 1;
                            end -= 1;
                        } else {
                            break;
                        }
                    }
                    let href = &window[..end];
                    let host_at = scheme.find("//").unwrap_or(0) + 2;
                    if !too_long && href.len() > host_at && safe_href(href) {
                        flush!(i);
                        toks.push(Tok::Link { href, label: href });
                        i += end;
                        text_start = i;
                        continue;
                    }
                }
                i += 1;
            }
            b'@' if prev_char(i).is_none_or(|c| !c.is_alphanumeric() && !"_.-".contains(c)) => {
                // A username's characters, without the punctuation that ends a sentence.
                let mut len = bytes[i + 1..]
                    .iter()
                    .take_while(|&&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
                    .count();
                let longer = len > 32;
                while len > 0 && matches!(bytes[i + len], b'.' | b'-') {
                    len -= 1;
                }
                if (3..=32).contains(&len) && !longer {
                    flush!(i);
                    toks.push(Tok::Mention(&text[i + 1..i + 1 + len]));
                    i += 1 + len;
                    text_start = i;
                } else {
                    i += 1;
                }
            }
            b'*' | b'_' | b'~' | b'|' => {
                let n = bytes[i..].iter().take_while(|&&c| c == b).count();
                // "***" is "**" and "*": opening, the strong one first; closing, the other way.
                let marks: &[Mark] = match (b, n) {
                    (b'*', 1) => &[Mark::Star],
                    (b'*', 2) => &[Mark::Star2],
                    (b'*', 3) => &[Mark::Star2, Mark::Star],
                    (b'_', 1) => &[Mark::Under],
                    (b'_', 2) => &[Mark::Under2],
                    (b'~', 2) => &[Mark::Tilde2],
                    (b'|', 2) => &[Mark::Bar2],
                    _ => &[],
                };
                if !marks.is_empty() {
                    flush!(i);
                    let (before, after) = (prev_char(i), next_char(i + n));
                    let mut open = after.is_some_and(|c| !c.is_whitespace());
                    let mut close = before.is_some_and(|c| !c.is_whitespace());
                    if b == b'_' {
                        // snake_case_names are not emphasis.
                        open &= before.is_none_or(|c| !c.is_alphanumeric());
                        close &= after.is_none_or(|c| !c.is_alphanumeric());
                    }
                    let mut at = i;
                    let ordered: Vec<Mark> =
                        if close && !open { marks.iter().rev().copied().collect() } else { marks.to_vec() };
                    for mark in ordered {
                        let len = match (marks.len(), mark) {
                            (1, _) => n,
                            (_, Mark::Star2) => 2,
                            _ => 1,
                        };
                        toks.push(Tok::Mark { mark, text: &text[at..at + len], open, close });
                        at += len;
                    }
                    text_start = i + n;
                }
                i += n;
            }
            _ => i += 1,
        }
    }
    flush!(bytes.len());
    toks
}

#[cfg(test)]
mod tests;
