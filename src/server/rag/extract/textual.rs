//! Source code, data files (JSON, YAML, TOML, XML) and e-mail (`.eml`).

use mail_parser::MimeHeaders;

use super::{Extracted, office::escape_heading};

/// A programming language recognised by file extension, and how its top-level definitions
/// begin (at column 0), so each definition starts a section named by its first line.
#[derive(Debug, PartialEq, Eq)]
pub struct Language {
    pub name: &'static str,
    pub extensions: &'static [&'static str],
    pub media_type: &'static str,
    definitions: &'static [&'static str],
}

const RUST_DEFS: &[&str] = &[
    "fn ",
    "pub fn ",
    "pub(crate) fn ",
    "async fn ",
    "pub async fn ",
    "struct ",
    "pub struct ",
    "pub(crate) struct ",
    "enum ",
    "pub enum ",
    "trait ",
    "pub trait ",
    "impl ",
    "impl<",
    "mod ",
    "pub mod ",
    "macro_rules!",
    "const ",
    "pub const ",
    "static ",
    "pub static ",
    "type ",
    "pub type ",
];
const JS_DEFS: &[&str] = &[
    "function ",
    "async function ",
    "class ",
    "export ",
    "const ",
    "let ",
    "interface ",
    "type ",
    "enum ",
];
const JAVA_DEFS: &[&str] = &[
    "public ",
    "private ",
    "protected ",
    "class ",
    "interface ",
    "enum ",
    "record ",
    "abstract ",
    "final ",
    "static ",
    "internal ",
    "namespace ",
];

pub const LANGUAGES: &[Language] = &[
    Language {
        name: "rust",
        extensions: &["rs"],
        media_type: "text/x-rust",
        definitions: RUST_DEFS,
    },
    Language {
        name: "python",
        extensions: &["py", "pyi"],
        media_type: "text/x-python",
        definitions: &["def ", "async def ", "class "],
    },
    Language {
        name: "javascript",
        extensions: &["js", "mjs", "cjs", "jsx"],
        media_type: "text/javascript",
        definitions: JS_DEFS,
    },
    Language {
        name: "typescript",
        extensions: &["ts", "tsx", "mts"],
        media_type: "text/x-typescript",
        definitions: JS_DEFS,
    },
    Language {
        name: "go",
        extensions: &["go"],
        media_type: "text/x-go",
        definitions: &["func ", "type "],
    },
    Language {
        name: "java",
        extensions: &["java"],
        media_type: "text/x-java",
        definitions: JAVA_DEFS,
    },
    Language {
        name: "kotlin",
        extensions: &["kt", "kts"],
        media_type: "text/x-kotlin",
        definitions: &[
            "fun ",
            "class ",
            "object ",
            "interface ",
            "data class ",
            "enum class ",
        ],
    },
    Language {
        name: "csharp",
        extensions: &["cs"],
        media_type: "text/x-csharp",
        definitions: JAVA_DEFS,
    },
    Language {
        name: "c",
        extensions: &["c", "h"],
        media_type: "text/x-c",
        definitions: &[],
    },
    Language {
        name: "cpp",
        extensions: &["cc", "cpp", "cxx", "hpp", "hh", "hxx"],
        media_type: "text/x-c++",
        definitions: &["class ", "namespace ", "struct ", "template"],
    },
    Language {
        name: "swift",
        extensions: &["swift"],
        media_type: "text/x-swift",
        definitions: &["func ", "class ", "struct ", "enum ", "protocol ", "extension "],
    },
    Language {
        name: "ruby",
        extensions: &["rb"],
        media_type: "text/x-ruby",
        definitions: &["def ", "class ", "module "],
    },
    Language {
        name: "php",
        extensions: &["php"],
        media_type: "text/x-php",
        definitions: &["function ", "class ", "interface ", "trait "],
    },
    Language {
        name: "shell",
        extensions: &["sh", "bash", "zsh"],
        media_type: "text/x-shellscript",
        definitions: &["function "],
    },
    Language {
        name: "sql",
        extensions: &["sql"],
        media_type: "text/x-sql",
        definitions: &["CREATE ", "create "],
    },
    Language {
        name: "lua",
        extensions: &["lua"],
        media_type: "text/x-lua",
        definitions: &["function ", "local function "],
    },
    Language {
        name: "scala",
        extensions: &["scala"],
        media_type: "text/x-scala",
        definitions: &["def ", "class ", "object ", "trait ", "case class "],
    },
    Language {
        name: "perl",
        extensions: &["pl", "pm"],
        media_type: "text/x-perl",
        definitions: &["sub "],
    },
    Language {
        name: "r",
        extensions: &["r"],
        media_type: "text/x-r",
        definitions: &[],
    },
    Language {
        name: "css",
        extensions: &["css", "scss"],
        media_type: "text/css",
        definitions: &[],
    },
];

pub fn language_by_extension(ext: &str) -> Option<&'static Language> {
    LANGUAGES.iter().find(|l| l.extensions.contains(&ext))
}

pub fn language_by_name(name: &str) -> Option<&'static Language> {
    LANGUAGES.iter().find(|l| l.name == name)
}

/// Whether `line` begins a top-level definition: at column 0, one of the language's
/// openings, or for C-like code a line with a `(` that does not end a statement.
fn defines(language: &Language, line: &str) -> bool {
    if line.starts_with(char::is_whitespace) || line.trim().is_empty() {
        return false;
    }
    if language.definitions.iter().any(|d| line.starts_with(d)) {
        return true;
    }
    if matches!(language.name, "c" | "cpp") {
        let first = line.chars().next().unwrap_or(' ');
        let t = line.trim_end();
        return (first.is_ascii_alphabetic() || first == '_')
            && t.contains('(')
            && !t.ends_with(';')
            && !t.ends_with(',')
            && !["return", "if", "else", "for", "while", "switch", "case"]
                .iter()
                .any(|k| t.starts_with(k));
    }
    if language.name == "shell" {
        return line.trim_end().ends_with("() {");
    }
    if language.name == "r" {
        return line.contains("<- function");
    }
    false
}

/// The name a definition's section gets: its first line without the body's opening.
fn signature(line: &str) -> String {
    let t = line.trim();
    let t = t.strip_suffix('{').unwrap_or(t).trim_end();
    let t = t.strip_suffix(':').unwrap_or(t).trim_end();
    let mut s: String = t.chars().take(100).collect();
    if t.chars().count() > 100 {
        s.push('…');
    }
    s
}

/// Source code: kept line for line; each top-level definition starts a `##` section named
/// by its signature, so a passage is cited as `file.rs › fn main()`. Lines that would read
/// as headings (a `# comment`) are indented by one space.
pub fn code(text: &str, language: &Language) -> Extracted {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    // Comment and attribute lines right above a definition belong to its section.
    let mut pending: Vec<&str> = Vec::new();
    let flush = |out: &mut String, pending: &mut Vec<&str>| {
        for l in pending.drain(..) {
            out.push_str(&escape_heading(l));
            out.push('\n');
        }
    };
    for line in text.lines() {
        let t = line.trim_start();
        let hash_comment = t.starts_with('#') && !matches!(language.name, "c" | "cpp");
        let preamble = !line.starts_with(char::is_whitespace)
            && (hash_comment || ["//", "/*", "* ", "@"].iter().any(|p| t.starts_with(p)));
        if preamble {
            pending.push(line);
            continue;
        }
        if defines(language, line) {
            out.push_str(&format!("\n## {}\n\n", signature(line)));
        }
        flush(&mut out, &mut pending);
        out.push_str(&escape_heading(line));
        out.push('\n');
    }
    flush(&mut out, &mut pending);
    Extracted {
        text: out,
        title: None,
    }
}

/// JSON, YAML, TOML or XML: the text as it is (JSON minified on one line is laid out, so
/// it can be split into passages); lines that would read as headings are indented.
pub fn data(text: &str, json: bool) -> Extracted {
    let laid_out = json
        .then(|| {
            // serde_json stops at 128 levels of nesting: deeper files stay as they are.
            serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
        })
        .flatten();
    Extracted {
        text: escape_heading(laid_out.as_deref().unwrap_or(text)),
        title: None,
    }
}

/// An e-mail (RFC 5322, MIME): its headers, then the plain text body (or the HTML one
/// read as a page), then the names of its attachments. The subject is the title.
pub fn email(bytes: &[u8]) -> Result<Extracted, String> {
    let message = mail_parser::MessageParser::default()
        .parse(bytes)
        .ok_or("the e-mail could not be read: no headers were found")?;
    let addresses = |a: Option<&mail_parser::Address<'_>>| {
        a.map(|a| {
            a.iter()
                .map(|addr| match (addr.name(), addr.address()) {
                    (Some(n), Some(e)) => format!("{n} <{e}>"),
                    (None, Some(e)) => e.to_owned(),
                    (Some(n), None) => n.to_owned(),
                    (None, None) => String::new(),
                })
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|s| !s.is_empty())
    };
    let plain = message.body_text(0).map(|t| t.into_owned());
    Ok(Message {
        subject: message.subject().map(str::to_owned),
        from: addresses(message.from()),
        to: addresses(message.to()),
        cc: addresses(message.cc()),
        date: message.date().map(|d| d.to_rfc3339()),
        body: match plain {
            Some(text) if !text.trim().is_empty() => Body::Text(text),
            _ => Body::Html(message.body_html(0).map(|h| h.into_owned()).unwrap_or_default()),
        },
        attachments: message
            .attachments()
            .filter_map(|a| a.attachment_name().map(str::to_owned))
            .collect(),
    }
    .text())
}

/// An e-mail's parts, whatever file it came in (`.eml`, Outlook's `.msg`).
pub(crate) struct Message {
    pub subject: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cc: Option<String>,
    pub date: Option<String>,
    pub body: Body,
    pub attachments: Vec<String>,
}

pub(crate) enum Body {
    Text(String),
    Html(String),
}

impl Message {
    /// The subject as the heading, the header lines, the body (its lines never taken for
    /// headings), the attachments' names; the subject is the title.
    pub fn text(self) -> Extracted {
        let subject = self.subject.filter(|s| !s.trim().is_empty());
        let mut out = String::new();
        if let Some(s) = &subject {
            out.push_str(&format!(
                "# {}\n\n",
                s.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
        for (label, value) in [
            ("From", self.from),
            ("To", self.to),
            ("Cc", self.cc),
            ("Date", self.date),
        ] {
            if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
                out.push_str(&format!("{label}: {}\n", v.trim()));
            }
        }
        out.push('\n');
        out.push_str(&match self.body {
            Body::Text(text) => escape_heading(&text),
            Body::Html(html) => super::html(&html).text,
        });
        if !self.attachments.is_empty() {
            out.push_str(&format!("\n\nAttachments: {}\n", self.attachments.join(", ")));
        }
        Extracted {
            text: out,
            title: subject,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Kind, extract};
    use super::*;

    #[test]
    fn code_sections_follow_top_level_definitions() {
        let source = "# A helper module\nimport os\n\n# Reads the file.\ndef read(path):\n    # not a heading\n    return open(path).read()\n\nclass Store:\n    pass\n";
        let python = language_by_extension("py").unwrap();
        let e = extract(Kind::Code(python), source.as_bytes()).unwrap();
        assert_eq!(
            e.text,
            " # A helper module\nimport os\n\n## def read(path)\n\n # Reads the file.\ndef read(path):\n    # not a heading\n    return open(path).read()\n\n## class Store\n\nclass Store:\n    pass"
        );
        let c = language_by_extension("c").unwrap();
        let e = extract(
            Kind::Code(c),
            b"#include <stdio.h>\nstatic int x = 1;\nint main(void)\n{\n  return 0;\n}\n",
        )
        .unwrap();
        assert!(e.text.contains("## int main(void)\n"), "{}", e.text);
        assert!(!e.text.contains("## static"), "{}", e.text);
    }

    #[test]
    fn minified_json_is_laid_out_and_yaml_comments_are_not_headings() {
        let e = extract(Kind::Json, br#"{"name":"stoa","tags":["a","b"]}"#).unwrap();
        assert!(e.text.contains("\n  \"name\": \"stoa\",\n"), "{}", e.text);
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(extract(Kind::Json, deep.as_bytes()).unwrap().text.len(), 20_000);
        let e = extract(Kind::Yaml, b"# Settings\nport: 8080\n").unwrap();
        assert_eq!(e.text, " # Settings\nport: 8080");
    }

    #[test]
    fn an_email_gives_its_headers_body_and_attachment_names() {
        let mail = "From: Ada Lovelace <ada@example.org>\r\nTo: team@example.org\r\nSubject: =?UTF-8?Q?Caf=C3=A9_opening?=\r\nDate: Mon, 7 Dec 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe cafe opens on Monday at 8.\r\n--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"menu.pdf\"\r\n\r\nJVBERi0=\r\n--b--\r\n";
        let e = extract(Kind::Email, mail.as_bytes()).unwrap();
        assert_eq!(e.title.as_deref(), Some("Café opening"));
        assert!(e.text.starts_with("# Café opening\n\nFrom: Ada Lovelace <ada@example.org>\nTo: team@example.org\nDate: 2026-12-07T09:00:00"), "{}", e.text);
        assert!(e.text.contains("The cafe opens on Monday at 8."), "{}", e.text);
        assert!(e.text.ends_with("Attachments: menu.pdf"), "{}", e.text);
    }
}
