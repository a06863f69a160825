//! Text out of uploaded files: plain text, Markdown, HTML and PDF. The result is
//! normalised text in which headings are Markdown lines (`# Title`), so chunking can keep
//! them as context whatever the source format was.

use scraper::{ElementRef, Html, Node};

/// A supported kind of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Markdown,
    Html,
    Pdf,
}

impl Kind {
    pub fn media_type(self) -> &'static str {
        match self {
            Kind::Text => "text/plain",
            Kind::Markdown => "text/markdown",
            Kind::Html => "text/html",
            Kind::Pdf => "application/pdf",
        }
    }

    /// From the file name, then the content: a PDF is recognised by its signature.
    pub fn detect(file_name: &str, bytes: &[u8]) -> Result<Self, String> {
        if bytes.starts_with(b"%PDF-") {
            return Ok(Kind::Pdf);
        }
        let ext = file_name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "txt" | "text" | "log" | "csv" => Ok(Kind::Text),
            "md" | "markdown" => Ok(Kind::Markdown),
            "html" | "htm" | "xhtml" => Ok(Kind::Html),
            "pdf" => Err("the file is named .pdf but is not a PDF".into()),
            "" => Err("the file has no extension; supported: .txt, .md, .html, .pdf".into()),
            other => Err(format!(
                "files of type .{other} are not supported; supported: .txt, .md, .html, .pdf"
            )),
        }
    }
}

/// Extracted text and a title found in the file, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    pub text: String,
    pub title: Option<String>,
}

/// Extracts and normalises. Errors are messages for the user.
pub fn extract(kind: Kind, bytes: &[u8]) -> Result<Extracted, String> {
    let extracted = match kind {
        Kind::Text | Kind::Markdown => {
            let text = decode(bytes);
            let title = (kind == Kind::Markdown)
                .then(|| {
                    text.lines()
                        .find_map(|l| l.strip_prefix("# ").map(|t| t.trim().to_owned()))
                })
                .flatten();
            Extracted { text, title }
        }
        Kind::Html => html(&decode(bytes)),
        Kind::Pdf => pdf(bytes)?,
    };
    let text = normalise(&extracted.text);
    if text.trim().is_empty() {
        return Err("no text could be extracted from the file".into());
    }
    Ok(Extracted {
        text,
        title: extracted.title.filter(|t| !t.is_empty()),
    })
}

/// UTF-8 (with or without BOM), UTF-16 with a BOM, otherwise Windows-1252.
fn decode(bytes: &[u8]) -> String {
    if let Some((encoding, _)) = encoding_rs::Encoding::for_bom(bytes) {
        return encoding.decode(bytes).0.into_owned();
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => encoding_rs::WINDOWS_1252.decode(bytes).0.into_owned(),
    }
}

/// Unix newlines, no control characters, no trailing spaces, at most one blank line.
pub fn normalise(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line: String = line
            .chars()
            .map(|c| if c == '\t' { ' ' } else { c })
            .filter(|c| !c.is_control())
            .collect();
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank_run += 1;
            if blank_run > 1 || out.is_empty() {
                continue;
            }
            out.push('\n');
        } else {
            blank_run = 0;
            out.push_str(line);
            out.push('\n');
        }
    }
    out.trim_end().to_owned()
}

fn html(source: &str) -> Extracted {
    let doc = Html::parse_document(source);
    let title = doc
        .root_element()
        .descendants()
        .filter_map(ElementRef::wrap)
        .find(|e| e.value().name() == "title")
        .map(|e| e.text().collect::<String>().trim().to_owned());
    let mut text = String::new();
    let body = doc
        .root_element()
        .descendants()
        .filter_map(ElementRef::wrap)
        .find(|e| e.value().name() == "body")
        .unwrap_or_else(|| doc.root_element());
    walk(body, &mut text);
    Extracted { text, title }
}

fn walk(element: ElementRef<'_>, out: &mut String) {
    let name = element.value().name();
    if matches!(
        name,
        "script" | "style" | "noscript" | "template" | "head" | "svg"
    ) {
        return;
    }
    let heading = match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    };
    if let Some(level) = heading {
        let title: String = element
            .text()
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        out.push_str(&format!("\n\n{} {title}\n\n", "#".repeat(level)));
        return;
    }
    let block = matches!(
        name,
        "p" | "div"
            | "section"
            | "article"
            | "main"
            | "header"
            | "footer"
            | "nav"
            | "aside"
            | "ul"
            | "ol"
            | "table"
            | "tr"
            | "blockquote"
            | "pre"
            | "figure"
            | "dl"
            | "dt"
            | "dd"
            | "form"
    );
    if block {
        out.push_str("\n\n");
    }
    match name {
        "li" => out.push_str("\n- "),
        "br" => out.push('\n'),
        "td" | "th" => out.push(' '),
        _ => {}
    }
    for child in element.children() {
        match child.value() {
            Node::Text(t) => {
                if name == "pre" {
                    out.push_str(t);
                } else {
                    let collapsed = t.split_whitespace().collect::<Vec<_>>().join(" ");
                    if !collapsed.is_empty() {
                        if t.starts_with(char::is_whitespace) && !out.ends_with(char::is_whitespace) {
                            out.push(' ');
                        }
                        out.push_str(&collapsed);
                        if t.ends_with(char::is_whitespace) {
                            out.push(' ');
                        }
                    }
                }
            }
            Node::Element(_) => {
                if let Some(e) = ElementRef::wrap(child) {
                    walk(e, out);
                }
            }
            _ => {}
        }
    }
    if block {
        out.push_str("\n\n");
    }
}

fn pdf(bytes: &[u8]) -> Result<Extracted, String> {
    // The PDF parser may panic on malformed files; a bad upload must not take the server
    // down, so a panic is caught and reported as a broken file.
    let owned = bytes.to_vec();
    let result = std::panic::catch_unwind(move || pdf_extract::extract_text_from_mem(&owned));
    match result {
        Ok(Ok(text)) => Ok(Extracted { text, title: None }),
        Ok(Err(e)) => Err(format!("the PDF could not be read: {e}")),
        Err(_) => Err("the PDF could not be read: the file is malformed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_kinds_and_refuses_others_by_name() {
        assert_eq!(Kind::detect("a.MD", b"# x"), Ok(Kind::Markdown));
        assert_eq!(Kind::detect("notes.bin", b"%PDF-1.4"), Ok(Kind::Pdf));
        assert!(
            Kind::detect("fake.pdf", b"hello")
                .unwrap_err()
                .contains("not a PDF")
        );
        assert!(Kind::detect("report.docx", b"PK").unwrap_err().contains(".docx"));
    }

    #[test]
    fn html_keeps_headings_lists_and_text_but_no_scripts() {
        let page = "<html><head><title>Guide</title><script>alert(1)</script></head><body>\
            <h1>Setup</h1><p>Install the <b>tool</b> first.</p><ul><li>one</li><li>two</li></ul>\
            <style>p{}</style><h2>Use</h2><p>Run it.</p></body></html>";
        let e = extract(Kind::Html, page.as_bytes()).unwrap();
        assert_eq!(e.title.as_deref(), Some("Guide"));
        assert_eq!(
            e.text,
            "# Setup\n\nInstall the tool first.\n\n- one\n- two\n\n## Use\n\nRun it."
        );
    }

    #[test]
    fn normalises_newlines_controls_and_blank_runs() {
        assert_eq!(normalise("a\r\n\r\n\r\n\tb\u{0}  \n"), "a\n\n b");
    }

    #[test]
    fn empty_text_is_an_error() {
        assert!(extract(Kind::Text, b"  \n\n ").is_err());
    }
}
