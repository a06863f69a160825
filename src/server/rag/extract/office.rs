//! Word (`.docx`), PowerPoint (`.pptx`), OpenDocument text and presentations (`.odt`,
//! `.odp`) and EPUB books, written as Markdown-ish text: headings as `#` lines, list items
//! as `- `, table rows as `a | b | c`, so chunks and citations keep their section path.

use std::collections::HashMap;

use super::{
    Extracted,
    container::Container,
    xml::{Node, first_text, walk},
};

/// Markdown-ish output.
#[derive(Default)]
pub struct Writer {
    pub out: String,
}

impl Writer {
    pub fn heading(&mut self, level: usize, text: &str) {
        let text = one_line(text);
        if !text.is_empty() {
            self.out
                .push_str(&format!("\n\n{} {text}\n\n", "#".repeat(level.clamp(1, 6))));
        }
    }

    /// A paragraph or table after list items starts after a blank line.
    fn block_start(&mut self) {
        if self.out.ends_with('\n') && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    pub fn paragraph(&mut self, text: &str) {
        let text = text.trim();
        if !text.is_empty() {
            self.block_start();
            self.out.push_str(&escape_heading(text));
            self.out.push_str("\n\n");
        }
    }

    pub fn item(&mut self, text: &str) {
        let text = one_line(text);
        if !text.is_empty() {
            self.out.push_str("- ");
            self.out.push_str(&text);
            self.out.push('\n');
        }
    }

    /// Rows as `a | b | c` lines, one paragraph.
    pub fn rows(&mut self, rows: &[Vec<String>]) {
        self.block_start();
        for row in rows {
            let line = table_line(row);
            if !line.is_empty() {
                self.out.push_str(&escape_heading(&line));
                self.out.push('\n');
            }
        }
        self.out.push('\n');
    }
}

/// A table row as text: cells on one line each, separated by ` | `, empty trailing cells
/// left out.
pub fn table_line(row: &[String]) -> String {
    let cells: Vec<String> = row.iter().map(|c| one_line(c)).collect();
    let used = cells.iter().rposition(|c| !c.is_empty()).map_or(0, |i| i + 1);
    cells[..used].join(" | ")
}

/// A table being read (Word's `w:tbl`, OpenDocument's `table:table`): rows of cells, each
/// cell the paragraphs inside it joined; a table nested in a cell is read into that cell.
#[derive(Default)]
struct Table {
    /// Open tables.
    depth: usize,
    rows: Vec<Vec<String>>,
    row: Vec<String>,
    cell: String,
}

impl Table {
    fn open(&mut self) {
        self.depth += 1;
        if self.depth == 1 {
            self.rows.clear();
        }
    }

    fn start_row(&mut self) {
        if self.depth == 1 {
            self.row.clear();
        }
    }

    fn start_cell(&mut self) {
        if self.depth == 1 {
            self.cell.clear();
        }
    }

    /// A paragraph inside the table goes into the current cell; `false` outside any table.
    fn paragraph(&mut self, text: &str) -> bool {
        if self.depth == 0 {
            return false;
        }
        if !self.cell.is_empty() {
            self.cell.push(' ');
        }
        self.cell.push_str(text.trim());
        true
    }

    fn end_cell(&mut self) {
        if self.depth == 1 {
            self.row.push(std::mem::take(&mut self.cell));
        }
    }

    fn end_row(&mut self) {
        if self.depth == 1 {
            self.rows.push(std::mem::take(&mut self.row));
        }
    }

    /// Closes a table; the outermost one is written as rows.
    fn close(&mut self, w: &mut Writer) {
        self.depth = self.depth.saturating_sub(1);
        if self.depth == 0 {
            w.rows(&std::mem::take(&mut self.rows));
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A line of content that would read as a heading (`# x`) gets a leading space, so only
/// the headings the reader found make sections.
pub fn escape_heading(text: &str) -> String {
    text.lines()
        .map(|line| {
            if crate::server::rag::chunk::heading_level(line).is_some() {
                format!(" {line}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---- Word ----------------------------------------------------------------------------

/// Heading levels of a Word document's paragraph styles, from `word/styles.xml`: a style
/// named "heading N" (whatever its id, which is translated in other languages) or one with
/// an outline level.
fn word_heading_styles(styles: &str) -> HashMap<String, usize> {
    let mut levels = HashMap::new();
    let mut current: Option<String> = None;
    let _ = walk(styles, |node| match node {
        Node::Start { name: "style", attrs } => {
            current = attrs.get("styleId").map(str::to_owned);
        }
        Node::Start { name: "name", attrs } => {
            if let (Some(id), Some(val)) = (&current, attrs.get("val")) {
                let val = val.to_ascii_lowercase();
                // "Title" is the document's title, not a section: it stays a paragraph.
                let level = val
                    .strip_prefix("heading ")
                    .and_then(|n| n.trim().parse::<usize>().ok());
                if let Some(level) = level {
                    levels.insert(id.clone(), level.clamp(1, 6));
                }
            }
        }
        Node::Start {
            name: "outlineLvl",
            attrs,
        } => {
            if let (Some(id), Some(n)) = (&current, attrs.get("val").and_then(|v| v.parse::<usize>().ok())) {
                levels.entry(id.clone()).or_insert((n + 1).clamp(1, 6));
            }
        }
        Node::End { name: "style" } => current = None,
        _ => {}
    });
    levels
}

/// State of a Word paragraph, list item or table being read.
#[derive(Default)]
struct WordState {
    styles: HashMap<String, usize>,
    para: String,
    level: Option<usize>,
    list: bool,
    in_text: bool,
    table: Table,
}

impl WordState {
    fn node(&mut self, node: Node<'_>, w: &mut Writer) {
        match node {
            Node::Start { name, attrs } => match name {
                "p" => {
                    self.para.clear();
                    self.level = None;
                    self.list = false;
                }
                "pStyle" => {
                    self.level = attrs.get("val").and_then(|id| {
                        self.styles.get(id).copied().or_else(|| {
                            id.to_ascii_lowercase()
                                .strip_prefix("heading")
                                .and_then(|n| n.trim().parse::<usize>().ok())
                        })
                    })
                }
                "outlineLvl" => {
                    if let Some(n) = attrs.get("val").and_then(|v| v.parse::<usize>().ok())
                        && n < 9
                    {
                        self.level = Some(n + 1);
                    }
                }
                "numPr" => self.list = true,
                "t" => self.in_text = true,
                "tab" => self.para.push(' '),
                "br" | "cr" => self.para.push('\n'),
                "tbl" => self.table.open(),
                "tr" => self.table.start_row(),
                "tc" => self.table.start_cell(),
                _ => {}
            },
            Node::Text(t) if self.in_text => self.para.push_str(&t),
            Node::End { name } => match name {
                "t" => self.in_text = false,
                "p" => {
                    let para = std::mem::take(&mut self.para);
                    if self.table.paragraph(&para) {
                        return;
                    }
                    if let Some(level) = self.level {
                        w.heading(level.min(6), &para);
                    } else if self.list {
                        w.item(&para);
                    } else {
                        w.paragraph(&para);
                    }
                }
                "tc" => self.table.end_cell(),
                "tr" => self.table.end_row(),
                "tbl" => self.table.close(w),
                _ => {}
            },
            Node::Text(_) => {}
        }
    }
}

/// An Office file's title, from its core properties.
fn core_title(zip: &mut Container<'_>) -> Result<Option<String>, String> {
    Ok(zip
        .text("docProps/core.xml")?
        .and_then(|core| first_text(&core, "title")))
}

pub fn docx(bytes: &[u8]) -> Result<Extracted, String> {
    let what = "Word document";
    let mut zip = Container::open(bytes, what)?;
    let document = zip.required("word/document.xml", what)?;
    let styles = zip.text("word/styles.xml")?.unwrap_or_default();
    let title = core_title(&mut zip)?;
    let mut state = WordState {
        styles: word_heading_styles(&styles),
        ..WordState::default()
    };
    let mut w = Writer::default();
    walk(&document, |node| state.node(node, &mut w)).map_err(|e| format!("the {what} is damaged: {e}"))?;
    Ok(Extracted { text: w.out, title })
}

// ---- PowerPoint ----------------------------------------------------------------------

/// Slides in order: `ppt/slides/slideN.xml` by N.
fn slide_names(zip: &Container<'_>) -> Vec<String> {
    let mut slides: Vec<(u32, String)> = zip
        .names()
        .into_iter()
        .filter_map(|n| {
            let number = n
                .strip_prefix("ppt/slides/slide")?
                .strip_suffix(".xml")?
                .parse::<u32>()
                .ok()?;
            Some((number, n))
        })
        .collect();
    slides.sort();
    slides.into_iter().map(|(_, n)| n).collect()
}

/// One slide: its title (the text of the title placeholder) and its other paragraphs.
fn slide(xml: &str) -> Result<(Option<String>, Vec<String>), String> {
    let mut title = None::<String>;
    let mut body = Vec::new();
    let mut shape_is_title = false;
    let mut shape: Vec<String> = Vec::new();
    let mut para = String::new();
    let mut in_text = false;
    walk(xml, |node| match node {
        Node::Start { name: "sp", .. } => {
            shape_is_title = false;
            shape.clear();
        }
        Node::Start { name: "ph", attrs } => {
            shape_is_title |= matches!(attrs.get("type"), Some("title" | "ctrTitle"));
        }
        Node::Start { name: "p", .. } => para.clear(),
        Node::Start { name: "t", .. } => in_text = true,
        Node::Start { name: "br", .. } => para.push('\n'),
        Node::Text(t) if in_text => para.push_str(&t),
        Node::End { name: "t" } => in_text = false,
        Node::End { name: "p" } if !para.trim().is_empty() => {
            shape.push(std::mem::take(&mut para));
        }
        Node::End { name: "sp" } => {
            if shape_is_title && title.is_none() {
                title = Some(one_line(&shape.join(" ")));
            } else {
                body.append(&mut shape);
            }
        }
        _ => {}
    })?;
    Ok((title.filter(|t| !t.is_empty()), body))
}

pub fn pptx(bytes: &[u8]) -> Result<Extracted, String> {
    let what = "PowerPoint presentation";
    let mut zip = Container::open(bytes, what)?;
    if !zip.has("ppt/presentation.xml") {
        return Err(format!(
            "the {what} has no ppt/presentation.xml; it is not a {what}"
        ));
    }
    let title = core_title(&mut zip)?;
    let mut w = Writer::default();
    for (i, name) in slide_names(&zip).iter().enumerate() {
        let xml = zip.required(name, what)?;
        let (slide_title, body) = slide(&xml).map_err(|e| format!("slide {} is damaged: {e}", i + 1))?;
        match slide_title {
            Some(t) => w.heading(1, &format!("Slide {}: {t}", i + 1)),
            None => w.heading(1, &format!("Slide {}", i + 1)),
        }
        for p in body {
            w.paragraph(&p);
        }
    }
    Ok(Extracted { text: w.out, title })
}

// ---- OpenDocument ----------------------------------------------------------------------

#[derive(Default)]
struct OdfState {
    /// Open `text:p` / `text:h`: the heading level (0 for a paragraph) and the text so far.
    para: Option<(usize, String)>,
    lists: usize,
    table: Table,
    pages: usize,
}

impl OdfState {
    fn node(&mut self, node: Node<'_>, w: &mut Writer) {
        match node {
            Node::Start { name, attrs } => match name {
                "h" => {
                    let level = attrs
                        .get("outline-level")
                        .and_then(|l| l.parse::<usize>().ok())
                        .unwrap_or(1);
                    self.para = Some((level.clamp(1, 6), String::new()));
                }
                "p" if self.para.is_none() => self.para = Some((0, String::new())),
                "s" => {
                    let n = attrs.get("c").and_then(|c| c.parse::<usize>().ok()).unwrap_or(1);
                    if let Some((_, text)) = &mut self.para {
                        text.push_str(&" ".repeat(n.min(8)));
                    }
                }
                "tab" => self.push(" "),
                "line-break" => self.push("\n"),
                "list" => self.lists += 1,
                "table" => self.table.open(),
                "table-row" => self.table.start_row(),
                "table-cell" => self.table.start_cell(),
                "page" => {
                    self.pages += 1;
                    let name = attrs.get("name").filter(|n| !n.starts_with("page"));
                    match name {
                        Some(n) => w.heading(1, &format!("Slide {}: {n}", self.pages)),
                        None => w.heading(1, &format!("Slide {}", self.pages)),
                    }
                }
                _ => {}
            },
            Node::Text(t) => self.push(&t),
            Node::End { name } => match name {
                "h" | "p" => {
                    let Some((level, text)) = self.para.take() else {
                        return;
                    };
                    if self.table.paragraph(&text) {
                        return;
                    }
                    if level > 0 {
                        w.heading(level, &text);
                    } else if self.lists > 0 {
                        w.item(&text);
                    } else {
                        w.paragraph(&text);
                    }
                }
                "list" => self.lists = self.lists.saturating_sub(1),
                "table-cell" => self.table.end_cell(),
                "table-row" => self.table.end_row(),
                "table" => self.table.close(w),
                _ => {}
            },
        }
    }

    fn push(&mut self, text: &str) {
        if let Some((_, para)) = &mut self.para {
            para.push_str(text);
        }
    }
}

/// OpenDocument text (`.odt`) or presentation (`.odp`): `content.xml`, title from `meta.xml`.
pub fn odf(bytes: &[u8], what: &str) -> Result<Extracted, String> {
    let mut zip = Container::open(bytes, what)?;
    let content = zip.required("content.xml", what)?;
    let title = zip.text("meta.xml")?.and_then(|meta| first_text(&meta, "title"));
    let mut state = OdfState::default();
    let mut w = Writer::default();
    walk(&content, |node| state.node(node, &mut w)).map_err(|e| format!("the {what} is damaged: {e}"))?;
    Ok(Extracted { text: w.out, title })
}

// ---- EPUB ----------------------------------------------------------------------------

/// `dir` + `href` with `..` and `.` resolved and `%XX` decoded, as a path in the archive.
fn resolve(dir: &str, href: &str) -> String {
    let href = href.split('#').next().unwrap_or_default();
    let decoded = percent_decode(href);
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in decoded.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn epub(bytes: &[u8]) -> Result<Extracted, String> {
    let what = "EPUB book";
    let mut zip = Container::open(bytes, what)?;
    let container = zip.required("META-INF/container.xml", what)?;
    let mut opf_path = None;
    walk(&container, |node| {
        if let Node::Start {
            name: "rootfile",
            attrs,
        } = node
            && opf_path.is_none()
        {
            opf_path = attrs.get("full-path").map(str::to_owned);
        }
    })?;
    let opf_path = opf_path.ok_or_else(|| format!("the {what} names no package file"))?;
    let opf = zip.required(&opf_path, what)?;
    let dir = opf_path.rsplit_once('/').map_or("", |(d, _)| d);
    let mut manifest: HashMap<String, String> = HashMap::new();
    let mut spine = Vec::new();
    walk(&opf, |node| match node {
        Node::Start { name: "item", attrs } => {
            if let (Some(id), Some(href)) = (attrs.get("id"), attrs.get("href")) {
                manifest.insert(id.to_owned(), resolve(dir, href));
            }
        }
        Node::Start {
            name: "itemref",
            attrs,
        } => {
            if let Some(id) = attrs.get("idref") {
                spine.push(id.to_owned());
            }
        }
        _ => {}
    })
    .map_err(|e| format!("the {what}'s package file is damaged: {e}"))?;
    let title = first_text(&opf, "title");
    let mut out = String::new();
    for id in spine {
        let Some(path) = manifest.get(&id) else { continue };
        let Some(page) = zip.text(path)? else { continue };
        let chapter = super::html(&page);
        out.push_str(&chapter.text);
        out.push_str("\n\n");
    }
    Ok(Extracted { text: out, title })
}

#[cfg(test)]
pub mod tests {
    use super::super::{Kind, container::tests::archive, extract};

    const W: &str = r#"xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main""#;

    pub fn docx_fixture() -> Vec<u8> {
        let styles = format!(
            r#"<w:styles {W}><w:style w:styleId="berschrift1"><w:name w:val="heading 1"/></w:style>
            <w:style w:styleId="Heading2"><w:name w:val="heading 2"/></w:style></w:styles>"#
        );
        let document = format!(
            r#"<?xml version="1.0"?><w:document {W}><w:body>
            <w:p><w:pPr><w:pStyle w:val="berschrift1"/></w:pPr><w:r><w:t>Leave</w:t></w:r></w:p>
            <w:p><w:r><w:t xml:space="preserve">Staff get </w:t></w:r><w:r><w:t>31 days &amp; a half.</w:t></w:r></w:p>
            <w:p><w:pPr><w:pStyle w:val="Heading2"/></w:pPr><w:r><w:t>Carry-over</w:t></w:r></w:p>
            <w:p><w:pPr><w:numPr><w:ilvl w:val="0"/></w:numPr></w:pPr><w:r><w:t>Up to five days</w:t></w:r></w:p>
            <w:p><w:r><w:t># not a heading</w:t></w:r></w:p>
            <w:tbl><w:tr><w:tc><w:p><w:r><w:t>Grade</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Days</w:t></w:r></w:p></w:tc></w:tr>
            <w:tr><w:tc><w:p><w:r><w:t>A</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>31</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
            </w:body></w:document>"#
        );
        let core = r#"<cp:coreProperties xmlns:cp="x" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Staff handbook</dc:title></cp:coreProperties>"#;
        archive(&[
            ("[Content_Types].xml", b"<Types/>"),
            ("word/document.xml", document.as_bytes()),
            ("word/styles.xml", styles.as_bytes()),
            ("docProps/core.xml", core.as_bytes()),
        ])
    }

    #[test]
    fn word_headings_lists_and_tables_keep_their_structure() {
        let e = extract(Kind::Docx, &docx_fixture()).unwrap();
        assert_eq!(e.title.as_deref(), Some("Staff handbook"));
        assert_eq!(
            e.text,
            "# Leave\n\nStaff get 31 days & a half.\n\n## Carry-over\n\n- Up to five days\n\n \
             # not a heading\n\nGrade | Days\nA | 31"
        );
    }

    pub fn pptx_fixture() -> Vec<u8> {
        let slide = |title: &str, body: &str| {
            format!(
                r#"<p:sld xmlns:p="p" xmlns:a="a"><p:cSld><p:spTree>
                <p:sp><p:nvSpPr><p:nvPr><p:ph type="title"/></p:nvPr></p:nvSpPr><p:txBody><a:p><a:r><a:t>{title}</a:t></a:r></a:p></p:txBody></p:sp>
                <p:sp><p:txBody><a:p><a:r><a:t>{body}</a:t></a:r></a:p></p:txBody></p:sp>
                </p:spTree></p:cSld></p:sld>"#
            )
        };
        let (s1, s2, s10) = (
            slide("Roadmap", "Ship in May."),
            slide("Budget", "Two engineers."),
            slide("Risks", "None known."),
        );
        archive(&[
            ("ppt/presentation.xml", b"<p:presentation xmlns:p=\"p\"/>"),
            ("ppt/slides/slide10.xml", s10.as_bytes()),
            ("ppt/slides/slide2.xml", s2.as_bytes()),
            ("ppt/slides/slide1.xml", s1.as_bytes()),
        ])
    }

    #[test]
    fn slides_are_sections_titled_by_their_title_placeholder() {
        let deck = pptx_fixture();
        let e = extract(Kind::Pptx, &deck).unwrap();
        assert_eq!(
            e.text,
            "# Slide 1: Roadmap\n\nShip in May.\n\n# Slide 2: Budget\n\nTwo engineers.\n\n# Slide 3: Risks\n\nNone known."
        );
    }

    pub fn odt_fixture() -> Vec<u8> {
        let content = r#"<office:document-content xmlns:office="o" xmlns:text="t" xmlns:table="tb"><office:body><office:text>
            <text:h text:outline-level="1">Leave</text:h>
            <text:p>Staff get<text:s/>31<text:tab/>days.</text:p>
            <text:list><text:list-item><text:p>First item</text:p></text:list-item></text:list>
            <table:table><table:table-row><table:table-cell><text:p>Grade</text:p></table:table-cell><table:table-cell><text:p>Days</text:p></table:table-cell></table:table-row></table:table>
            </office:text></office:body></office:document-content>"#;
        archive(&[
            ("mimetype", b"application/vnd.oasis.opendocument.text"),
            ("content.xml", content.as_bytes()),
            ("meta.xml", b"<m xmlns:dc=\"d\"><dc:title>Handbook</dc:title></m>"),
        ])
    }

    #[test]
    fn opendocument_text_keeps_outline_levels_lists_and_tables() {
        let odt = odt_fixture();
        let e = extract(Kind::Odt, &odt).unwrap();
        assert_eq!(e.title.as_deref(), Some("Handbook"));
        assert_eq!(
            e.text,
            "# Leave\n\nStaff get 31 days.\n\n- First item\n\nGrade | Days"
        );
    }

    pub fn epub_fixture() -> Vec<u8> {
        let opf = r#"<package xmlns:dc="dc"><metadata><dc:title>The Book</dc:title></metadata>
            <manifest><item id="c2" href="text/two%20b.xhtml"/><item id="c1" href="text/one.xhtml"/></manifest>
            <spine><itemref idref="c1"/><itemref idref="c2"/></spine></package>"#;
        archive(&[
            ("mimetype", b"application/epub+zip"),
            (
                "META-INF/container.xml",
                b"<container><rootfiles><rootfile full-path=\"OEBPS/content.opf\"/></rootfiles></container>",
            ),
            ("OEBPS/content.opf", opf.as_bytes()),
            (
                "OEBPS/text/one.xhtml",
                b"<html><body><h1>One</h1><p>First chapter.</p></body></html>",
            ),
            (
                "OEBPS/text/two b.xhtml",
                b"<html><body><h1>Two</h1><p>Second chapter.</p></body></html>",
            ),
        ])
    }

    #[test]
    fn an_epub_is_read_in_spine_order() {
        let book = epub_fixture();
        let e = extract(Kind::Epub, &book).unwrap();
        assert_eq!(e.title.as_deref(), Some("The Book"));
        assert_eq!(e.text, "# One\n\nFirst chapter.\n\n# Two\n\nSecond chapter.");
    }

    #[test]
    fn xml_nested_a_million_deep_is_read_without_recursion() {
        let deep = format!(
            "<w:document {W}><w:body>{}<w:p><w:r><w:t>deep</w:t></w:r></w:p>{}</w:body></w:document>",
            "<w:sdt>".repeat(1_000_000),
            "</w:sdt>".repeat(1_000_000)
        );
        let file = archive(&[("word/document.xml", deep.as_bytes())]);
        let text = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || extract(Kind::Docx, &file).map(|e| e.text))
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert_eq!(text.unwrap(), "deep");
    }

    #[test]
    fn a_word_file_without_its_document_says_so() {
        let e = extract(Kind::Docx, &archive(&[("x.xml", b"<x/>")])).unwrap_err();
        assert!(e.contains("no word/document.xml"), "{e}");
    }
}
