//! Syntax highlighting of code blocks in answers: a small tokenizer (keywords, strings,
//! comments, numbers) for common languages, producing escaped HTML with `tok-*` classes.
//! Small on purpose: it runs in the browser on every streamed token, and adds little to
//! the WASM bundle.

/// What distinguishes one language from another here.
struct Lang {
    keywords: &'static [&'static str],
    line_comments: &'static [&'static str],
    block_comment: Option<(&'static str, &'static str)>,
    quotes: &'static [char],
    /// SQL keywords are matched in any case.
    case_insensitive: bool,
}

const RUST: Lang = Lang {
    keywords: &[
        "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
        "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
        "return", "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use",
        "where", "while",
    ],
    line_comments: &["//"],
    block_comment: Some(("/*", "*/")),
    quotes: &['"'],
    case_insensitive: false,
};
const PYTHON: Lang = Lang {
    keywords: &[
        "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif", "else",
        "except", "False", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "None",
        "nonlocal", "not", "or", "pass", "raise", "return", "True", "try", "while", "with", "yield",
    ],
    line_comments: &["#"],
    block_comment: None,
    quotes: &['"', '\''],
    case_insensitive: false,
};
const JAVASCRIPT: Lang = Lang {
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
        "from",
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
        "super",
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
    line_comments: &["//"],
    block_comment: Some(("/*", "*/")),
    quotes: &['"', '\'', '`'],
    case_insensitive: false,
};
const C_LIKE: Lang = Lang {
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
        "defer",
        "delete",
        "do",
        "double",
        "else",
        "enum",
        "extends",
        "false",
        "final",
        "float",
        "for",
        "func",
        "go",
        "if",
        "implements",
        "import",
        "int",
        "interface",
        "long",
        "namespace",
        "new",
        "nil",
        "null",
        "package",
        "private",
        "protected",
        "public",
        "return",
        "short",
        "sizeof",
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
        "var",
        "virtual",
        "void",
        "while",
    ],
    line_comments: &["//"],
    block_comment: Some(("/*", "*/")),
    quotes: &['"', '\''],
    case_insensitive: false,
};
const SHELL: Lang = Lang {
    keywords: &[
        "case", "do", "done", "elif", "else", "esac", "export", "fi", "for", "function", "if", "in", "local",
        "return", "then", "until", "while",
    ],
    line_comments: &["#"],
    block_comment: None,
    quotes: &['"', '\''],
    case_insensitive: false,
};
const SQL: Lang = Lang {
    keywords: &[
        "and",
        "as",
        "by",
        "create",
        "delete",
        "desc",
        "distinct",
        "drop",
        "from",
        "group",
        "having",
        "in",
        "index",
        "insert",
        "into",
        "is",
        "join",
        "key",
        "left",
        "limit",
        "not",
        "null",
        "on",
        "or",
        "order",
        "primary",
        "references",
        "select",
        "set",
        "table",
        "union",
        "update",
        "values",
        "where",
        "with",
    ],
    line_comments: &["--"],
    block_comment: Some(("/*", "*/")),
    quotes: &['\'', '"'],
    case_insensitive: true,
};
const DATA: Lang = Lang {
    keywords: &["true", "false", "null"],
    line_comments: &["#"],
    block_comment: None,
    quotes: &['"', '\''],
    case_insensitive: false,
};

fn lang(name: &str) -> Option<&'static Lang> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "rust" | "rs" => &RUST,
        "python" | "py" => &PYTHON,
        "javascript" | "js" | "jsx" | "typescript" | "ts" | "tsx" => &JAVASCRIPT,
        "c" | "h" | "cpp" | "c++" | "cc" | "java" | "go" | "golang" | "csharp" | "cs" | "kotlin"
        | "swift" => &C_LIKE,
        "bash" | "sh" | "shell" | "zsh" | "console" => &SHELL,
        "sql" | "sqlite" | "postgres" | "postgresql" => &SQL,
        "json" | "toml" | "yaml" | "yml" => &DATA,
        _ => return None,
    })
}

pub(crate) fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

fn span(out: &mut String, class: &str, text: &str) {
    out.push_str("<span class=\"tok-");
    out.push_str(class);
    out.push_str("\">");
    escape(out, text);
    out.push_str("</span>");
}

/// `code` as escaped HTML with highlighted tokens, or `None` for a language not known here
/// (then the block is shown plain).
pub fn highlight(language: &str, code: &str) -> Option<String> {
    let lang = lang(language)?;
    let mut out = String::with_capacity(code.len() * 2);
    let mut i = 0;
    let bytes_len = code.len();
    while i < bytes_len {
        let rest = &code[i..];
        if let Some(start) = lang.line_comments.iter().find(|c| rest.starts_with(**c)) {
            let end = rest.find('\n').unwrap_or(rest.len()).max(start.len());
            span(&mut out, "com", &rest[..end]);
            i += end;
            continue;
        }
        if let Some((open, close)) = lang.block_comment
            && rest.starts_with(open)
        {
            let end = rest[open.len()..]
                .find(close)
                .map_or(rest.len(), |e| open.len() + e + close.len());
            span(&mut out, "com", &rest[..end]);
            i += end;
            continue;
        }
        let c = rest.chars().next().unwrap_or_default();
        if lang.quotes.contains(&c) {
            // To the closing quote (a backslash escapes one character), or the end.
            let open = c.len_utf8();
            let mut end = rest.len();
            let mut escaped = false;
            for (j, d) in rest[open..].char_indices() {
                if escaped {
                    escaped = false;
                } else if d == '\\' {
                    escaped = true;
                } else if d == c {
                    end = open + j + d.len_utf8();
                    break;
                }
            }
            span(&mut out, "str", &rest[..end]);
            i += end;
            continue;
        }
        if c.is_ascii_digit() {
            let end = rest
                .find(|d: char| !(d.is_ascii_alphanumeric() || d == '.' || d == '_'))
                .unwrap_or(rest.len());
            span(&mut out, "num", &rest[..end]);
            i += end;
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let end = rest
                .find(|d: char| !(d.is_alphanumeric() || d == '_'))
                .unwrap_or(rest.len());
            let word = &rest[..end];
            let keyword = if lang.case_insensitive {
                lang.keywords.iter().any(|k| k.eq_ignore_ascii_case(word))
            } else {
                lang.keywords.contains(&word)
            };
            if keyword {
                span(&mut out, "kw", word);
            } else {
                escape(&mut out, word);
            }
            i += end;
            continue;
        }
        escape(&mut out, &rest[..c.len_utf8()]);
        i += c.len_utf8();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::highlight;

    #[test]
    fn marks_keywords_strings_comments_and_numbers_and_escapes_the_rest() {
        let html = highlight("rust", "fn main() { let s = \"<b>\"; // done\n  x < 42 }").unwrap();
        assert!(html.contains("<span class=\"tok-kw\">fn</span>"), "{html}");
        assert!(html.contains("<span class=\"tok-kw\">let</span>"), "{html}");
        assert!(
            html.contains("<span class=\"tok-str\">&quot;&lt;b&gt;&quot;</span>"),
            "{html}"
        );
        assert!(html.contains("<span class=\"tok-com\">// done</span>"), "{html}");
        assert!(
            html.contains("x &lt; <span class=\"tok-num\">42</span>"),
            "{html}"
        );
        assert!(!html.contains("<b>"), "{html}");
        let sql = highlight("SQL", "select * from t where a = 'x' -- c").unwrap();
        assert!(sql.contains("<span class=\"tok-kw\">select</span>"), "{sql}");
        assert!(
            sql.contains("<span class=\"tok-str\">&#39;x&#39;</span>"),
            "{sql}"
        );
        // An unterminated string runs to the end (as while it streams in), still escaped.
        let open = highlight("python", "print('<script>").unwrap();
        assert!(
            open.ends_with("<span class=\"tok-str\">&#39;&lt;script&gt;</span>"),
            "{open}"
        );
        assert_eq!(highlight("brainfuck", "+"), None);
    }

    #[test]
    fn any_text_survives_whole() {
        // Every input character comes out (escaped), whatever the tokens; no panics on
        // multi-byte text or cut-off tokens, as a streamed answer has them.
        for lang in ["rust", "python", "js", "sql", "sh", "json", "go"] {
            for input in [
                "é'",
                "\"\\",
                "/*",
                "--",
                "0x",
                "日本'語",
                "a//b/*c*/d",
                "'\\'",
                "\u{1F600}\"x",
            ] {
                let html = highlight(lang, input).unwrap();
                let text = html
                    .split('<')
                    .map(|piece| piece.split_once('>').map_or(piece, |(_, t)| t))
                    .collect::<String>()
                    .replace("&quot;", "\"")
                    .replace("&#39;", "'")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&");
                assert_eq!(text, input, "{lang}: {html}");
            }
        }
    }
}
