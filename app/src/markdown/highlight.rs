//! Colours for code blocks: one small lexer, driven by a table of languages (comment marks,
//! quotes, keywords), that finds comments, strings, numbers and keywords in one pass. A full
//! grammar-based highlighter (syntect, tree-sitter) would multiply the bundle for a chat message.

/// What a piece of code is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Plain,
    Keyword,
    Str,
    Comment,
    Number,
}

impl Class {
    /// The utility classes that colour it (at least 4.5:1 on the code block in both themes).
    pub fn css(self) -> &'static str {
        match self {
            Class::Plain => "",
            Class::Keyword => "text-fuchsia-700 dark:text-fuchsia-300",
            Class::Str => "text-emerald-700 dark:text-emerald-300",
            Class::Comment => "italic text-slate-600 dark:text-slate-400",
            Class::Number => "text-amber-800 dark:text-amber-300",
        }
    }
}

struct Lang {
    names: &'static [&'static str],
    line_comments: &'static [&'static str],
    block_comment: Option<(&'static str, &'static str)>,
    quotes: &'static [u8],
    /// Keywords are matched whatever their case (SQL).
    any_case: bool,
    keywords: &'static [&'static str],
}

const C_COMMENTS: &[&str] = &["//"];
const HASH: &[&str] = &["#"];

const LANGS: &[Lang] = &[
    Lang {
        names: &["rust", "rs"],
        line_comments: C_COMMENTS,
        block_comment: Some(("/*", "*/")),
        // Not ': it also starts lifetimes.
        quotes: b"\"",
        any_case: false,
        keywords: &[
            "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false",
            "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
            "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while",
        ],
    },
    Lang {
        names: &["js", "javascript", "ts", "typescript", "jsx", "tsx", "mjs", "json"],
        line_comments: C_COMMENTS,
        block_comment: Some(("/*", "*/")),
        quotes: b"\"'`",
        any_case: false,
        keywords: &[
            "async",
            "await",
            "break",
            "case",
            "catch",
            "class",
            "const",
            "continue",
            "default",
            "delete",
            "do",
            "else",
            "export",
            "extends",
            "false",
            "finally",
            "for",
            "function",
            "if",
            "import",
            "in",
            "instanceof",
            "interface",
            "let",
            "new",
            "null",
            "of",
            "return",
            "static",
            "switch",
            "this",
            "throw",
            "true",
            "try",
            "type",
            "typeof",
            "undefined",
            "var",
            "void",
            "while",
            "yield",
        ],
    },
    Lang {
        names: &["python", "py"],
        line_comments: HASH,
        block_comment: None,
        quotes: b"\"'",
        any_case: false,
        keywords: &[
            "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def",
            "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda",
            "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
        ],
    },
    Lang {
        names: &["go", "golang"],
        line_comments: C_COMMENTS,
        block_comment: Some(("/*", "*/")),
        quotes: b"\"'`",
        any_case: false,
        keywords: &[
            "break",
            "case",
            "chan",
            "const",
            "continue",
            "default",
            "defer",
            "else",
            "fallthrough",
            "false",
            "for",
            "func",
            "go",
            "goto",
            "if",
            "import",
            "interface",
            "map",
            "nil",
            "package",
            "range",
            "return",
            "select",
            "struct",
            "switch",
            "true",
            "type",
            "var",
        ],
    },
    Lang {
        names: &["c", "h", "cpp", "c++", "cc", "hpp", "java", "kotlin", "kt", "cs", "csharp", "swift", "dart", "scala"],
        line_comments: C_COMMENTS,
        block_comment: Some(("/*", "*/")),
        quotes: b"\"'",
        any_case: false,
        keywords: &[
            "auto",
            "bool",
            "break",
            "case",
            "catch",
            "char",
            "class",
            "const",
            "continue",
            "default",
            "do",
            "double",
            "else",
            "enum",
            "extends",
            "false",
            "final",
            "float",
            "for",
            "fun",
            "func",
            "if",
            "import",
            "int",
            "let",
            "long",
            "namespace",
            "new",
            "null",
            "nullptr",
            "override",
            "package",
            "private",
            "protected",
            "public",
            "return",
            "short",
            "static",
            "struct",
            "switch",
            "template",
            "this",
            "throw",
            "true",
            "try",
            "typedef",
            "unsigned",
            "using",
            "val",
            "var",
            "virtual",
            "void",
            "while",
        ],
    },
    Lang {
        names: &["sh", "bash", "shell", "zsh", "console"],
        line_comments: HASH,
        block_comment: None,
        quotes: b"\"'",
        any_case: false,
        keywords: &[
            "case", "do", "done", "echo", "elif", "else", "esac", "export", "fi", "for", "function", "if", "in",
            "local", "return", "then", "while",
        ],
    },
    Lang {
        names: &["sql", "psql", "sqlite"],
        line_comments: &["--"],
        block_comment: Some(("/*", "*/")),
        quotes: b"'\"",
        any_case: true,
        keywords: &[
            "and", "as", "asc", "by", "create", "delete", "desc", "distinct", "drop", "from", "group", "having", "in",
            "index", "insert", "into", "is", "join", "left", "limit", "not", "null", "on", "or", "order", "select",
            "set", "table", "update", "values", "where", "with",
        ],
    },
    Lang {
        names: &["toml", "yaml", "yml", "ini", "conf", "dockerfile"],
        line_comments: HASH,
        block_comment: None,
        quotes: b"\"'",
        any_case: false,
        keywords: &["true", "false", "null"],
    },
];

/// Whether a language is known (an unknown one is shown uncoloured).
pub fn known(lang: &str) -> bool {
    find(lang).is_some()
}

fn find(lang: &str) -> Option<&'static Lang> {
    LANGS.iter().find(|l| l.names.contains(&lang))
}

fn starts(bytes: &[u8], at: usize, mark: &str) -> bool {
    bytes[at..].starts_with(mark.as_bytes())
}

/// `code` cut into coloured pieces (all of it, in order). Linear in the text: every piece is
/// passed over once.
pub fn highlight<'a>(lang: &str, code: &'a str) -> Vec<(Class, &'a str)> {
    let Some(l) = find(lang) else { return vec![(Class::Plain, code)] };
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out: Vec<(Class, &'a str)> = Vec::new();
    let mut push = |class: Class, from: usize, to: usize| match out.last_mut() {
        Some((last, piece)) if *last == class && class == Class::Plain => {
            *piece = &code[from - piece.len()..to];
        }
        _ => out.push((class, &code[from..to])),
    };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (class, end) = if l.line_comments.iter().any(|m| starts(bytes, i, m)) {
            let end = bytes[i..].iter().position(|&c| c == b'\n').map_or(bytes.len(), |e| i + e);
            (Class::Comment, end)
        } else if let Some((open, close)) = l.block_comment.filter(|(open, _)| starts(bytes, i, open)) {
            let from = i + open.len();
            let end = (from..bytes.len()).find(|&k| starts(bytes, k, close)).map_or(bytes.len(), |k| k + close.len());
            (Class::Comment, end)
        } else if l.quotes.contains(&b) {
            // To the closing quote, past escapes; a quote left open ends with its line.
            let mut k = i + 1;
            let end = loop {
                match bytes.get(k) {
                    None => break bytes.len(),
                    Some(b'\\') => k += 2,
                    Some(&c) if c == b => break k + 1,
                    Some(b'\n') if b != b'`' => break k,
                    Some(_) => k += 1,
                }
            };
            (Class::Str, end.min(bytes.len()))
        } else if b.is_ascii_digit() && (i == 0 || !ident(bytes[i - 1])) {
            let len = bytes[i..].iter().take_while(|&&c| ident(c) || c == b'.').count();
            (Class::Number, i + len)
        } else if b.is_ascii_alphabetic() || b == b'_' {
            let len = bytes[i..].iter().take_while(|&&c| ident(c)).count();
            let word = &code[i..i + len];
            let keyword = if l.any_case {
                l.keywords.iter().any(|k| k.eq_ignore_ascii_case(word))
            } else {
                l.keywords.contains(&word)
            };
            (if keyword { Class::Keyword } else { Class::Plain }, i + len)
        } else {
            // One character (all of its bytes, so that every piece is whole text).
            let len = code[i..].chars().next().map_or(1, char::len_utf8);
            (Class::Plain, i + len)
        };
        push(class, i, end);
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes<'a>(lang: &str, code: &'a str) -> Vec<(Class, &'a str)> {
        highlight(lang, code).into_iter().filter(|(c, _)| *c != Class::Plain).collect()
    }

    #[test]
    fn colours_the_parts_of_code() {
        use Class::*;
        assert_eq!(
            classes("rust", "fn main() { let x = \"hi\\\"\"; // done\n 42 }"),
            [(Keyword, "fn"), (Keyword, "let"), (Str, "\"hi\\\"\""), (Comment, "// done"), (Number, "42")]
        );
        assert_eq!(classes("rust", "fn f<'a>(x: &'a str)"), [(Keyword, "fn")], "lifetimes are not strings");
        assert_eq!(
            classes("py", "def f(): # x\n  return 'a'"),
            [(Keyword, "def"), (Comment, "# x"), (Keyword, "return"), (Str, "'a'")]
        );
        assert_eq!(
            classes("sql", "SELECT id FROM t -- all"),
            [(Keyword, "SELECT"), (Keyword, "FROM"), (Comment, "-- all")]
        );
        assert_eq!(classes("js", "/* a\nb */ x1 = `multi\nline`"), [(Comment, "/* a\nb */"), (Str, "`multi\nline`")]);
        assert_eq!(highlight("brainfuck", "+[-]"), [(Plain, "+[-]")], "unknown languages stay plain");
    }

    #[test]
    fn every_byte_is_kept_in_order() {
        for (lang, code) in [
            ("rust", "/* open comment"),
            ("js", "\"open string\nnext"),
            ("c", "é 'ü' \"\\"),
            ("go", "x := `unclosed"),
            ("sh", "echo \"$HOME\" # ünï"),
        ] {
            let joined: String = highlight(lang, code).into_iter().map(|(_, p)| p).collect();
            assert_eq!(joined, code);
        }
    }
}
