//! Text out of uploaded files: plain text, Markdown, HTML, PDF (scanned pages by OCR),
//! images (by OCR), Office and OpenDocument files, RTF, EPUB, spreadsheets and CSV, data files,
//! e-mail and source code. The result is
//! normalised text in which headings are Markdown lines (`# Title`), so chunking can keep
//! them as context whatever the source format was.

pub(crate) mod container;
pub(crate) mod legacy;
pub(crate) mod ocr;
pub(crate) mod office;
pub(crate) mod rtf;
pub(crate) mod tables;
mod textual;
mod xml;

pub use ocr::Ocr;
pub use textual::{LANGUAGES, Language};

/// A supported kind of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Markdown,
    Html,
    Pdf,
    Docx,
    /// Word 97–2003.
    Doc,
    Rtf,
    Pptx,
    /// PowerPoint 97–2003.
    Ppt,
    Odt,
    Odp,
    Epub,
    Xlsx,
    Xls,
    Ods,
    Csv,
    Json,
    Yaml,
    Toml,
    Xml,
    Email,
    /// An Outlook message.
    Msg,
    /// Read by OCR.
    Png,
    Jpeg,
    Tiff,
    Code(&'static Language),
}

/// Kinds without a parameter, with their name (on the extraction process's command line),
/// media type and file extensions.
const KINDS: &[(Kind, &str, &str, &[&str])] = &[
    (
        Kind::Text,
        "text",
        "text/plain",
        &["txt", "text", "log", "rst", "adoc", "org", "tex"],
    ),
    (Kind::Markdown, "markdown", "text/markdown", &["md", "markdown"]),
    (Kind::Html, "html", "text/html", &["html", "htm", "xhtml"]),
    (Kind::Pdf, "pdf", "application/pdf", &["pdf"]),
    (
        Kind::Docx,
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        &["docx", "docm"],
    ),
    (Kind::Doc, "doc", "application/msword", &["doc", "dot"]),
    (Kind::Rtf, "rtf", "application/rtf", &["rtf"]),
    (
        Kind::Pptx,
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        &["pptx", "pptm"],
    ),
    (
        Kind::Ppt,
        "ppt",
        "application/vnd.ms-powerpoint",
        &["ppt", "pps", "pot"],
    ),
    (
        Kind::Odt,
        "odt",
        "application/vnd.oasis.opendocument.text",
        &["odt"],
    ),
    (
        Kind::Odp,
        "odp",
        "application/vnd.oasis.opendocument.presentation",
        &["odp"],
    ),
    (Kind::Epub, "epub", "application/epub+zip", &["epub"]),
    (
        Kind::Xlsx,
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        &["xlsx", "xlsm"],
    ),
    (Kind::Xls, "xls", "application/vnd.ms-excel", &["xls"]),
    (
        Kind::Ods,
        "ods",
        "application/vnd.oasis.opendocument.spreadsheet",
        &["ods"],
    ),
    (Kind::Csv, "csv", "text/csv", &["csv", "tsv"]),
    (
        Kind::Json,
        "json",
        "application/json",
        &["json", "jsonl", "geojson"],
    ),
    (Kind::Yaml, "yaml", "application/yaml", &["yaml", "yml"]),
    (
        Kind::Toml,
        "toml",
        "application/toml",
        &["toml", "ini", "cfg", "conf"],
    ),
    (
        Kind::Xml,
        "xml",
        "application/xml",
        &["xml", "svg", "rss", "atom"],
    ),
    (Kind::Email, "email", "message/rfc822", &["eml"]),
    (Kind::Msg, "msg", "application/vnd.ms-outlook", &["msg"]),
    (Kind::Png, "png", "image/png", &["png"]),
    (Kind::Jpeg, "jpeg", "image/jpeg", &["jpg", "jpeg"]),
    (Kind::Tiff, "tiff", "image/tiff", &["tif", "tiff"]),
];

/// What the refusal of an unknown extension lists.
const SUPPORTED: &str = "documents (.pdf, .docx, .doc, .odt, .rtf, .epub, .html, .md, .txt), presentations (.pptx, .ppt, .odp), \
    spreadsheets (.xlsx, .xls, .ods, .csv, .tsv), data (.json, .yaml, .toml, .xml), e-mail (.eml, .msg), \
    images of text (.png, .jpg, .tiff) and source code (.rs, .py, .js, .ts, .go, .java, .c, .cpp and more)";

impl Kind {
    fn entry(self) -> Option<&'static (Kind, &'static str, &'static str, &'static [&'static str])> {
        KINDS.iter().find(|(k, ..)| *k == self)
    }

    /// The kind's name on the extraction process's command line (`code:rust` for code).
    pub fn name(self) -> String {
        match self {
            Kind::Code(language) => format!("code:{}", language.name),
            other => other.entry().map_or("text", |e| e.1).to_owned(),
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        if let Some(language) = name.strip_prefix("code:") {
            return textual::language_by_name(language).map(Kind::Code);
        }
        KINDS.iter().find(|(_, n, ..)| *n == name).map(|(k, ..)| *k)
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Kind::Code(language) => language.media_type,
            other => other.entry().map_or("text/plain", |e| e.2),
        }
    }

    /// Whether an image starts with its format's signature.
    fn signed(self, bytes: &[u8]) -> bool {
        match self {
            Kind::Png => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            Kind::Jpeg => bytes.starts_with(&[0xff, 0xd8, 0xff]),
            Kind::Tiff => bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*"),
            _ => true,
        }
    }

    /// Whether the format is a ZIP container.
    fn zipped(self) -> bool {
        matches!(
            self,
            Kind::Docx | Kind::Pptx | Kind::Odt | Kind::Odp | Kind::Epub | Kind::Xlsx | Kind::Ods
        )
    }

    /// From the file name, then the content: a PDF is recognised by its signature, a ZIP
    /// container must be one (or an encrypted Office file, refused with that reason later).
    pub fn detect(file_name: &str, bytes: &[u8]) -> Result<Self, String> {
        if bytes.starts_with(b"%PDF-") {
            return Ok(Kind::Pdf);
        }
        let ext = file_name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        let kind = KINDS
            .iter()
            .find(|(.., exts)| exts.contains(&ext.as_str()))
            .map(|(k, ..)| *k)
            .or_else(|| textual::language_by_extension(&ext).map(Kind::Code));
        let zip = bytes.starts_with(b"PK\x03\x04");
        let compound = bytes.starts_with(&container::CFB_MAGIC);
        match kind {
            Some(Kind::Pdf) => Err("the file is named .pdf but is not a PDF".into()),
            // Word saves RTF and newer documents under .doc when asked to; read what it is.
            Some(Kind::Doc) if bytes.starts_with(b"{\\rtf") => Ok(Kind::Rtf),
            Some(Kind::Doc) if zip => Ok(Kind::Docx),
            Some(Kind::Ppt) if zip => Ok(Kind::Pptx),
            Some(Kind::Doc | Kind::Ppt | Kind::Msg) if !compound => Err(format!(
                "the file is named .{ext} but is not one (it is not a Compound File)"
            )),
            Some(k @ (Kind::Png | Kind::Jpeg | Kind::Tiff)) if !k.signed(bytes) => Err(format!(
                "the file is named .{ext} but is not a {} image",
                k.name().to_uppercase()
            )),
            Some(k) if k.zipped() && !zip && !compound => Err(format!(
                "the file is named .{ext} but is not one (it is not a ZIP container)"
            )),
            Some(k) => Ok(k),
            None if ext.is_empty() => Err(format!("the file has no extension; supported: {SUPPORTED}")),
            None => Err(format!(
                "files of type .{ext} are not supported; supported: {SUPPORTED}"
            )),
        }
    }
}

/// Extracted text and a title found in the file, if any.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Extracted {
    pub text: String,
    pub title: Option<String>,
}

/// Most text one file may give (the chunks of more would not be searched well anyway).
pub const MAX_TEXT_BYTES: usize = 128 << 20;

/// Extracts and normalises, with English OCR and no progress reports. Errors are
/// messages for the user.
pub fn extract(kind: Kind, bytes: &[u8]) -> Result<Extracted, String> {
    extract_with(kind, bytes, &Ocr::DEFAULT)
}

/// [`extract`] with OCR as the settings ask (languages, progress reports).
pub fn extract_with(kind: Kind, bytes: &[u8], ocr: &Ocr) -> Result<Extracted, String> {
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
        Kind::Pdf => pdf(bytes, ocr)?,
        Kind::Png | Kind::Jpeg | Kind::Tiff => Extracted {
            text: ocr::image_text(bytes, ocr)?,
            title: None,
        },
        Kind::Docx => office::docx(bytes)?,
        Kind::Doc => legacy::doc(bytes)?,
        Kind::Ppt => legacy::ppt(bytes)?,
        Kind::Msg => legacy::msg(bytes)?,
        Kind::Rtf => rtf::rtf(bytes)?,
        Kind::Pptx => office::pptx(bytes)?,
        Kind::Odt => office::odf(bytes, "OpenDocument text")?,
        Kind::Odp => office::odf(bytes, "OpenDocument presentation")?,
        Kind::Epub => office::epub(bytes)?,
        Kind::Xlsx => tables::workbook(bytes, tables::Book::Xlsx)?,
        Kind::Xls => tables::workbook(bytes, tables::Book::Xls)?,
        Kind::Ods => tables::workbook(bytes, tables::Book::Ods)?,
        Kind::Csv => tables::csv(&decode(bytes))?,
        Kind::Json => textual::data(&decode(bytes), true),
        Kind::Yaml | Kind::Toml | Kind::Xml => textual::data(&decode(bytes), false),
        Kind::Email => textual::email(bytes)?,
        Kind::Code(language) => textual::code(&decode(bytes), language),
    };
    if extracted.text.len() > MAX_TEXT_BYTES {
        return Err(format!(
            "the file holds {} MB of text; the limit is {} MB",
            extracted.text.len() >> 20,
            MAX_TEXT_BYTES >> 20
        ));
    }
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

/// Text out of HTML, read as a stream of tokens (html5ever's tokenizer) rather than a
/// tree: in time and memory linear in the page, whatever its nesting. (A tree builder
/// searches the stack of open elements at every tag: a page of `<div>`s nested 100,000
/// deep keeps it busy for minutes.) Headings become Markdown lines, list items `- `,
/// blocks paragraphs; scripts, styles and the head are left out; `<title>` is the title.
pub(crate) fn html(source: &str) -> Extracted {
    use html5ever::TokenizerResult;
    use html5ever::tendril::StrTendril;
    use html5ever::tokenizer::{BufferQueue, Tokenizer, TokenizerOpts};
    let tokenizer = Tokenizer::new(HtmlText::default(), TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from(source));
    while let TokenizerResult::Script(()) = tokenizer.feed(&input) {}
    tokenizer.end();
    let mut state = tokenizer.sink.state.into_inner();
    state.close_heading();
    Extracted {
        text: state.out,
        title: state
            .title
            .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" ")),
    }
}

/// Elements whose content is not text of the page.
const SKIPPED: [&str; 5] = ["script", "style", "noscript", "template", "svg"];
/// Elements that start and end a paragraph.
const BLOCKS: [&str; 20] = [
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "nav",
    "aside",
    "ul",
    "ol",
    "table",
    "tr",
    "blockquote",
    "pre",
    "figure",
    "dl",
    "dt",
    "dd",
    "form",
];

/// The token sink: what has been written, and where in the page the tokenizer is.
#[derive(Default)]
struct HtmlText {
    state: std::cell::RefCell<HtmlState>,
}

#[derive(Default)]
struct HtmlState {
    out: String,
    title: Option<String>,
    /// Inside `<title>`: its text goes to `title`.
    in_title: bool,
    /// Inside `<head>` (until `</head>` or `<body>`).
    in_head: bool,
    /// How many skipped elements are open (a `<svg>` in a `<template>`…).
    skipped: usize,
    /// How many `<pre>` are open: their text is kept as it is.
    pre: usize,
    /// An open heading: its level and text so far.
    heading: Option<(usize, String)>,
}

impl HtmlState {
    fn close_heading(&mut self) {
        if let Some((level, text)) = self.heading.take() {
            let title = text.split_whitespace().collect::<Vec<_>>().join(" ");
            self.out
                .push_str(&format!("\n\n{} {title}\n\n", "#".repeat(level)));
        }
    }

    fn tag(&mut self, tag: &html5ever::tokenizer::Tag) -> html5ever::tokenizer::TokenSinkResult<()> {
        use html5ever::tokenizer::{StartTag, TokenSinkResult, states::RawKind};
        let name: &str = &tag.name;
        let start = tag.kind == StartTag;
        let level = match name {
            "h1" => Some(1),
            "h2" => Some(2),
            "h3" => Some(3),
            "h4" => Some(4),
            "h5" => Some(5),
            "h6" => Some(6),
            _ => None,
        };
        match name {
            "title" if start => {
                self.in_title = true;
                self.title.get_or_insert_with(String::new);
                return TokenSinkResult::RawData(RawKind::Rcdata);
            }
            "title" => self.in_title = false,
            "head" => self.in_head = start,
            "body" if start => self.in_head = false,
            _ if SKIPPED.contains(&name) => {
                if !start {
                    self.skipped = self.skipped.saturating_sub(1);
                } else if !tag.self_closing {
                    self.skipped += 1;
                    return match name {
                        "script" => TokenSinkResult::RawData(RawKind::ScriptData),
                        "style" | "noscript" => TokenSinkResult::RawData(RawKind::Rawtext),
                        _ => TokenSinkResult::Continue,
                    };
                }
            }
            "textarea" if start => return TokenSinkResult::RawData(RawKind::Rcdata),
            _ => {}
        }
        if self.skipped > 0 || self.in_head {
            return TokenSinkResult::Continue;
        }
        if let Some(level) = level {
            // A heading ends at its end tag or at the next heading.
            self.close_heading();
            if start {
                self.heading = Some((level, String::new()));
            }
            return TokenSinkResult::Continue;
        }
        let target = match &mut self.heading {
            Some((_, text)) => text,
            None => &mut self.out,
        };
        if BLOCKS.contains(&name) {
            target.push_str("\n\n");
            if name == "pre" {
                self.pre = if start {
                    self.pre + 1
                } else {
                    self.pre.saturating_sub(1)
                };
            }
        } else if start {
            match name {
                "li" => target.push_str("\n- "),
                "br" => target.push('\n'),
                "td" | "th" if !target.ends_with(char::is_whitespace) => target.push(' '),
                _ => {}
            }
        } else if name == "br" {
            target.push('\n');
        }
        TokenSinkResult::Continue
    }

    fn text(&mut self, t: &str) {
        if self.in_title {
            if let Some(title) = &mut self.title {
                title.push_str(t);
            }
            return;
        }
        if self.skipped > 0 || self.in_head {
            return;
        }
        let pre = self.pre > 0;
        match &mut self.heading {
            Some((_, text)) => text.push_str(t),
            None => push_text(&mut self.out, t, pre),
        }
    }
}

impl html5ever::tokenizer::TokenSink for HtmlText {
    type Handle = ();

    fn process_token(
        &self,
        token: html5ever::tokenizer::Token,
        _line: u64,
    ) -> html5ever::tokenizer::TokenSinkResult<()> {
        use html5ever::tokenizer::{Token, TokenSinkResult};
        let mut state = self.state.borrow_mut();
        match token {
            Token::TagToken(tag) => state.tag(&tag),
            Token::CharacterTokens(t) => {
                state.text(&t);
                TokenSinkResult::Continue
            }
            _ => TokenSinkResult::Continue,
        }
    }
}

/// A text node: verbatim inside `pre`, otherwise with its whitespace collapsed.
fn push_text(out: &mut String, t: &str, pre: bool) {
    if pre {
        out.push_str(t);
        return;
    }
    let collapsed = t.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        if !t.is_empty() && !out.ends_with(char::is_whitespace) {
            out.push(' ');
        }
        return;
    }
    if t.starts_with(char::is_whitespace) && !out.ends_with(char::is_whitespace) {
        out.push(' ');
    }
    out.push_str(&collapsed);
    if t.ends_with(char::is_whitespace) {
        out.push(' ');
    }
}

/// A PDF, page by page: each page with text is a section `p. N`, so a passage never spans
/// two pages and its citation names its page ("manual › p. 12"). The text layer is read by
/// poppler (by `pdf-extract` when poppler is not installed); pages without one by OCR.
fn pdf(bytes: &[u8], ocr: &Ocr) -> Result<Extracted, String> {
    let mut pages = match ocr::pdf_pages(bytes) {
        Some(Ok(pages)) => pages,
        // Poppler refused the file: the other reader may still open it.
        Some(Err(poppler)) => pdf_extract_pages(bytes).map_err(|e| format!("{e} ({poppler})"))?,
        None => pdf_extract_pages(bytes)?,
    };
    let note = ocr::read_scanned_pages(bytes, &mut pages, ocr)?;
    if let Some(note) = note {
        (ocr.note)(&note);
    }
    Ok(Extracted {
        text: paged(&pages),
        title: None,
    })
}

/// The pages' text by `pdf-extract`.
pub(crate) fn pdf_extract_pages(bytes: &[u8]) -> Result<Vec<String>, String> {
    // The PDF parser may panic on malformed files; a bad upload must not take the server
    // down, so a panic is caught and reported as a broken file.
    let owned = bytes.to_vec();
    let result = std::panic::catch_unwind(move || pdf_extract::extract_text_from_mem_by_pages(&owned));
    match result {
        Ok(Ok(pages)) => Ok(pages),
        Ok(Err(e)) => Err(format!("the PDF could not be read: {e}")),
        Err(_) => Err("the PDF could not be read: the file is malformed".into()),
    }
}

/// Pages as sections `# p. N` (pages without text are left out, their numbers kept).
fn paged(pages: &[String]) -> String {
    let mut text = String::new();
    for (i, page) in pages.iter().enumerate() {
        if page.trim().is_empty() {
            continue;
        }
        text.push_str(&format!("\n\n# p. {}\n\n", i + 1));
        text.push_str(&office::escape_heading(page));
    }
    text
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
        assert!(
            Kind::detect("report.docx", b"hello")
                .unwrap_err()
                .contains("not a ZIP container")
        );
        assert_eq!(Kind::detect("report.docx", b"PK\x03\x04"), Ok(Kind::Docx));
        assert_eq!(
            Kind::detect("main.RS", b"fn main() {}").map(|k| k.name()),
            Ok("code:rust".to_owned())
        );
        assert!(
            Kind::detect("tool.exe", b"MZ")
                .unwrap_err()
                .contains("spreadsheets")
        );
        for (kind, ..) in KINDS {
            assert_eq!(Kind::from_name(&kind.name()), Some(*kind));
        }
        for language in LANGUAGES {
            assert_eq!(
                Kind::from_name(&Kind::Code(language).name()),
                Some(Kind::Code(language))
            );
        }
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
    fn tables_pre_and_entities_are_text_and_the_head_is_not() {
        let page = "<!doctype html><html><head><title> A &amp; B </title><meta charset=utf-8>\
            <style>td{}</style></head><body><table><tr><th>Name<td>Age</tr><tr><td>Ada<td>36</table>\
            <pre>  two  spaces\n  kept</pre><p>Less &lt;b&gt; than<br>next line</p>\
            <noscript><p>enable JS</p></noscript><template><p>hidden</p></template></body></html>";
        let e = extract(Kind::Html, page.as_bytes()).unwrap();
        assert_eq!(e.title.as_deref(), Some("A & B"));
        assert_eq!(
            e.text,
            "Name Age\n\nAda 36\n\n  two  spaces\n  kept\n\nLess <b> than\nnext line"
        );
    }

    #[test]
    fn a_page_nested_a_hundred_thousand_deep_is_read_without_recursion() {
        let depth = 100_000;
        let page = format!(
            "<html><body>{}<p>deep inside</p>{}</body></html>",
            "<div>".repeat(depth),
            "</div>".repeat(depth)
        );
        // On a small stack: the old recursive walk overflowed the worker's 2 MB.
        let text = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || extract(Kind::Html, page.as_bytes()).map(|e| e.text))
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert_eq!(text.unwrap(), "deep inside");
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
