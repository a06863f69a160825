//! Rich Text Format (`.rtf`, as Word, WordPad, LibreOffice and TextEdit write it): the
//! body's text with its headings (paragraphs with an outline level, as Word and pandoc
//! mark them), tables as `a | b` rows and the `\info` title.
//!
//! Read as one pass over the bytes with a stack of group states, never recursively:
//! groups nested a million deep cost nothing but the pass (past [`MAX_DEPTH`] the groups
//! share their parent's state). Destinations that are not text of the page (font, colour
//! and style tables, pictures, field instructions, headers and footers, every `\*`
//! destination) are skipped, and `\binN` data is stepped over without being read.

use super::Extracted;

/// Open groups that get a state of their own; deeper ones share the deepest one's.
const MAX_DEPTH: usize = 4_096;
/// Longest control word (the specification says 32 letters) and parameter read.
const MAX_WORD: usize = 32;
const MAX_DIGITS: usize = 10;

/// Where the text of a group goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Destination {
    Body,
    /// `\info`: only its `\title` is kept.
    Info,
    Title,
    Skipped,
}

/// What a group inherits and may change.
#[derive(Clone, Copy)]
struct Group {
    destination: Destination,
    /// Characters standing in for a `\uN` character, skipped after it (`\ucN`).
    unicode_skip: u32,
}

/// The document being written: finished text, the paragraph being read and its
/// properties.
struct Writer {
    out: String,
    title: String,
    paragraph: String,
    /// Bytes of `\'hh` escapes and plain text not yet decoded (a double-byte code page
    /// needs them in pairs).
    pending: Vec<u8>,
    encoding: &'static encoding_rs::Encoding,
    /// The current paragraph's outline level (0 is a top heading).
    outline: Option<u32>,
    /// Cells of the table row being read.
    row: Vec<String>,
    /// A high surrogate from `\uN`, waiting for its low half.
    high_surrogate: Option<u32>,
}

impl Writer {
    fn decode_pending(&mut self, destination: Destination) {
        if self.pending.is_empty() {
            return;
        }
        let text = self.encoding.decode_without_bom_handling(&self.pending).0;
        match destination {
            Destination::Body => self.paragraph.push_str(&text),
            Destination::Title => self.title.push_str(&text),
            Destination::Info | Destination::Skipped => {}
        }
        self.pending.clear();
    }

    fn push(&mut self, destination: Destination, c: char) {
        self.decode_pending(destination);
        match destination {
            Destination::Body => self.paragraph.push(c),
            Destination::Title => self.title.push(c),
            Destination::Info | Destination::Skipped => {}
        }
    }

    /// A UTF-16 code unit from `\uN`: a surrogate pair makes one character, a lone
    /// surrogate U+FFFD.
    fn push_unit(&mut self, destination: Destination, unit: u32) {
        let c = match (self.high_surrogate.take(), unit) {
            (None, 0xD800..=0xDBFF) => {
                self.high_surrogate = Some(unit);
                return;
            }
            (Some(high), 0xDC00..=0xDFFF) => {
                char::from_u32(0x10000 + ((high - 0xD800) << 10) + (unit - 0xDC00))
            }
            (_, unit) => char::from_u32(unit),
        };
        self.push(destination, c.unwrap_or('\u{fffd}'));
    }

    /// Ends the paragraph (`\par`): a heading line when it has an outline level.
    fn end_paragraph(&mut self) {
        let text = std::mem::take(&mut self.paragraph);
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        match self.outline {
            Some(level) if level < 6 => {
                let words: Vec<&str> = text.split_whitespace().collect();
                self.out.push_str(&format!(
                    "\n\n{} {}\n\n",
                    "#".repeat(level as usize + 1),
                    words.join(" ")
                ));
            }
            _ => {
                self.out.push_str(&super::office::escape_heading(text));
                self.out.push_str("\n\n");
            }
        }
    }

    fn end_cell(&mut self) {
        let text = std::mem::take(&mut self.paragraph);
        self.row
            .push(text.split_whitespace().collect::<Vec<_>>().join(" "));
    }

    fn end_row(&mut self) {
        if !self.paragraph.trim().is_empty() {
            self.end_cell();
        }
        let row = std::mem::take(&mut self.row);
        if row.iter().any(|c| !c.is_empty()) {
            self.out.push_str(&row.join(" | "));
            self.out.push('\n');
        }
    }
}

/// Destinations whose text is not the page's.
const SKIPPED: &[&str] = &[
    "fonttbl",
    "colortbl",
    "stylesheet",
    "listtable",
    "listoverridetable",
    "revtbl",
    "rsidtbl",
    "filetbl",
    "pict",
    "object",
    "fldinst",
    "header",
    "headerl",
    "headerr",
    "headerf",
    "footer",
    "footerl",
    "footerr",
    "footerf",
    "xmlnstbl",
    "themedata",
    "colorschememapping",
    "datastore",
    "latentstyles",
    "generator",
    "pgdsctbl",
];

/// The text of an RTF file.
pub(crate) fn rtf(bytes: &[u8]) -> Result<Extracted, String> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(0);
    if !bytes[start..].starts_with(b"{\\rtf") {
        return Err("the file is named .rtf but is not RTF (it does not start with {\\rtf)".into());
    }
    let mut w = Writer {
        out: String::new(),
        title: String::new(),
        paragraph: String::new(),
        pending: Vec::new(),
        encoding: encoding_rs::WINDOWS_1252,
        outline: None,
        row: Vec::new(),
        high_surrogate: None,
    };
    let mut stack = vec![Group {
        destination: Destination::Body,
        unicode_skip: 1,
    }];
    // Groups past MAX_DEPTH, which share the deepest state.
    let mut beyond = 0usize;
    // Characters still to skip after a `\uN`.
    let mut skip_chars = 0u32;
    // The last control word was `\*`: the group is an optional destination.
    let mut starred = false;
    let mut i = start;
    while i < bytes.len() {
        let group = *stack.last().expect("the outermost group is never popped");
        let b = bytes[i];
        i += 1;
        match b {
            b'{' => {
                w.decode_pending(group.destination);
                if stack.len() < MAX_DEPTH {
                    stack.push(group);
                } else {
                    beyond += 1;
                }
                skip_chars = 0;
            }
            b'}' => {
                w.decode_pending(group.destination);
                if beyond > 0 {
                    beyond -= 1;
                } else if stack.len() > 1 {
                    stack.pop();
                }
                skip_chars = 0;
                starred = false;
            }
            b'\r' | b'\n' => {}
            b'\\' => {
                let Some(&next) = bytes.get(i) else { break };
                if next.is_ascii_alphabetic() {
                    let word_start = i;
                    while i < bytes.len() && bytes[i].is_ascii_alphabetic() && i - word_start < MAX_WORD {
                        i += 1;
                    }
                    let word = std::str::from_utf8(&bytes[word_start..i]).unwrap_or("");
                    let negative = bytes.get(i) == Some(&b'-');
                    if negative {
                        i += 1;
                    }
                    let digits_start = i;
                    while i < bytes.len() && bytes[i].is_ascii_digit() && i - digits_start < MAX_DIGITS {
                        i += 1;
                    }
                    let param = std::str::from_utf8(&bytes[digits_start..i])
                        .ok()
                        .and_then(|d| d.parse::<i64>().ok())
                        .map(|n| if negative { -n } else { n });
                    if bytes.get(i) == Some(&b' ') {
                        i += 1;
                    }
                    if word == "bin" {
                        // Raw bytes follow: stepped over, never read as RTF.
                        let n = usize::try_from(param.unwrap_or(0).max(0)).unwrap_or(usize::MAX);
                        i = i.saturating_add(n).min(bytes.len());
                        continue;
                    }
                    let top = stack.last_mut().expect("the outermost group is never popped");
                    control_word(word, param, top, &mut w, &mut skip_chars, starred);
                    starred = false;
                } else {
                    i += 1;
                    match next {
                        b'\'' => {
                            let hex = bytes.get(i..i + 2).and_then(|h| std::str::from_utf8(h).ok());
                            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                                i += 2;
                                if skip_chars > 0 {
                                    skip_chars -= 1;
                                } else {
                                    w.pending.push(byte);
                                }
                            } else {
                                // A broken escape: its hex digits go with it.
                                while i < bytes.len() && bytes[i].is_ascii_hexdigit() {
                                    i += 1;
                                }
                            }
                        }
                        b'*' => starred = true,
                        b'~' => w.push(group.destination, '\u{a0}'),
                        b'_' => w.push(group.destination, '-'),
                        b'-' => {}
                        b'\r' | b'\n' if group.destination == Destination::Body => {
                            w.decode_pending(group.destination);
                            w.end_paragraph();
                        }
                        b'\\' | b'{' | b'}' => {
                            if skip_chars > 0 {
                                skip_chars -= 1;
                            } else {
                                w.push(group.destination, char::from(next));
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {
                if skip_chars > 0 {
                    skip_chars -= 1;
                } else if matches!(group.destination, Destination::Body | Destination::Title) {
                    w.pending.push(b);
                }
            }
        }
    }
    w.decode_pending(Destination::Body);
    w.end_row();
    w.end_paragraph();
    let title = w.title.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(Extracted {
        text: w.out,
        title: (!title.is_empty()).then_some(title),
    })
}

/// Applies one control word to the group it appears in.
fn control_word(
    word: &str,
    param: Option<i64>,
    group: &mut Group,
    w: &mut Writer,
    skip_chars: &mut u32,
    starred: bool,
) {
    let destination = group.destination;
    if destination == Destination::Skipped {
        return;
    }
    if starred || SKIPPED.contains(&word) {
        w.decode_pending(destination);
        group.destination = Destination::Skipped;
        return;
    }
    let text = |w: &mut Writer, s: &str| {
        for c in s.chars() {
            w.push(destination, c);
        }
    };
    match word {
        "info" => {
            w.decode_pending(destination);
            group.destination = Destination::Info;
        }
        "title" if destination == Destination::Info => group.destination = Destination::Title,
        "ansicpg" => w.encoding = code_page(param.unwrap_or(1252)),
        "uc" => group.unicode_skip = u32::try_from(param.unwrap_or(1).clamp(0, 8)).unwrap_or(1),
        "u" => {
            // A signed 16-bit value; surrogate pairs come as two `\u`.
            let unit = param.unwrap_or(0).rem_euclid(65_536) as u32;
            w.push_unit(destination, unit);
            *skip_chars = group.unicode_skip;
        }
        "par" | "sect" | "page" if destination == Destination::Body => {
            w.decode_pending(destination);
            w.end_paragraph();
        }
        "pard" => {
            w.decode_pending(destination);
            w.outline = None;
        }
        "outlinelevel" => w.outline = param.and_then(|p| u32::try_from(p).ok()),
        "cell" | "nestcell" if destination == Destination::Body => {
            w.decode_pending(destination);
            w.end_cell();
        }
        "row" | "nestrow" if destination == Destination::Body => {
            w.decode_pending(destination);
            w.end_row();
        }
        "line" => text(w, "\n"),
        "tab" => text(w, "\t"),
        "emdash" => text(w, "\u{2014}"),
        "endash" => text(w, "\u{2013}"),
        "bullet" => text(w, "\u{2022}"),
        "lquote" => text(w, "\u{2018}"),
        "rquote" => text(w, "\u{2019}"),
        "ldblquote" => text(w, "\u{201c}"),
        "rdblquote" => text(w, "\u{201d}"),
        "emspace" | "enspace" | "qmspace" => text(w, " "),
        _ => {}
    }
}

/// The encoding of a Windows code page (`\ansicpgN`); Windows-1252 for unknown ones.
fn code_page(page: i64) -> &'static encoding_rs::Encoding {
    let label = match page {
        874 => "windows-874",
        932 => "shift_jis",
        936 => "gbk",
        949 => "euc-kr",
        950 => "big5",
        1250..=1258 => {
            return encoding_rs::Encoding::for_label(format!("windows-{page}").as_bytes())
                .unwrap_or(encoding_rs::WINDOWS_1252);
        }
        10000 => "macintosh",
        _ => "windows-1252",
    };
    encoding_rs::Encoding::for_label(label.as_bytes()).unwrap_or(encoding_rs::WINDOWS_1252)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Minutes as Word writes them: font, colour and style tables, document info, a
    /// heading by outline level, code-page and Unicode escapes, a field, a picture, binary
    /// data and a table.
    pub(crate) fn fixture() -> Vec<u8> {
        let mut rtf = br#"{\rtf1\ansi\ansicpg1252\deff0\uc1
{\fonttbl{\f0\froman\fcharset0 Times New Roman;}{\f1\fswiss Arial;}}
{\colortbl;\red0\green0\blue0;}
{\stylesheet{\ql \f0 Normal;}{\s1\ql\outlinelevel0 \b\f1 heading 1;}}
{\info{\title House meeting minutes}{\author Kim}{\*\company Hidden Co}}
{\*\generator Riched20 10.0;}
\pard\plain \s1\outlinelevel0\b\f1\fs32 Boiler room\par
\pard\plain \f0 The boiler room is inspected every second Tuesday by the caf\'e9 staff \u8364?5 fee.\par
\pard Ask {\field{\*\fldinst HYPERLINK "http://example.invalid/"}{\fldrslt the caretaker}} first.\par
{\pict\pngblip\picw10\pich10 89504e470d0a1a0a0000000d49484452}
{\*\shppict nothing here}
\pard Raw data {\*\blob \bin5 {}}\}}\} follows.\par
\trowd\cellx2000\cellx4000
\pard\intbl Floor\cell Key holder\cell\row
\trowd\cellx2000\cellx4000
\pard\intbl Cellar\cell Ana\cell\row
\pard\plain \s1\outlinelevel0 Garden\par
\pard The hedge is cut in \ldblquote May\rdblquote\emdash never earlier. Emoji \u-10179?\u-8704?.\par
}"#
        .to_vec();
        rtf.extend_from_slice(b"\n");
        rtf
    }

    #[test]
    fn a_word_file_gives_its_headings_text_tables_and_title() {
        let e = rtf(&fixture()).unwrap();
        let text = super::super::normalise(&e.text);
        assert_eq!(e.title.as_deref(), Some("House meeting minutes"));
        assert!(text.starts_with("# Boiler room\n"), "{text}");
        assert!(
            text.contains("inspected every second Tuesday by the café staff €5 fee."),
            "{text}"
        );
        assert!(text.contains("Ask the caretaker first."), "{text}");
        assert!(text.contains("Floor | Key holder\nCellar | Ana"), "{text}");
        assert!(text.contains("# Garden"), "{text}");
        assert!(text.contains("“May”—never earlier. Emoji 😀."), "{text}");
        for hidden in [
            "Times New Roman",
            "heading 1",
            "HYPERLINK",
            "89504e",
            "Kim",
            "Hidden",
            "Riched",
            "nothing here",
        ] {
            assert!(!text.contains(hidden), "{hidden} in {text}");
        }
        // `\bin5` steps over its five bytes (braces among them) without reading them.
        assert!(text.contains("Raw data } follows."), "{text}");
    }

    #[test]
    fn groups_nested_a_million_deep_are_read_in_one_pass() {
        let depth = 1_000_000;
        let mut rtf = b"{\\rtf1 ".to_vec();
        rtf.extend(std::iter::repeat_n(b'{', depth));
        rtf.extend_from_slice(b"deep text");
        rtf.extend(std::iter::repeat_n(b'}', depth));
        rtf.extend_from_slice(b" after}");
        let e = rtf_text(&rtf);
        assert_eq!(e, "deep text after");
    }

    fn rtf_text(bytes: &[u8]) -> String {
        super::super::normalise(&rtf(bytes).unwrap().text)
    }

    #[test]
    fn broken_and_foreign_files_are_named_or_read_as_far_as_they_go() {
        assert!(rtf(b"hello").unwrap_err().contains("is not RTF"));
        // Unbalanced braces, a truncated escape and a huge \bin end the text, not the reader.
        assert_eq!(rtf_text(b"{\\rtf1 one}} two\\par}}}"), "one two");
        assert_eq!(rtf_text(b"{\\rtf1 three \\'e"), "three");
        assert_eq!(rtf_text(b"{\\rtf1 four \\bin99999999999999999999 gone}"), "four");
        // A control word longer than the specification allows is cut, not a loop.
        let long = format!("{{\\rtf1 five \\{} six}}", "a".repeat(100_000));
        assert!(rtf_text(long.as_bytes()).starts_with("five"));
        // Another code page: Cyrillic.
        assert_eq!(
            rtf_text(b"{\\rtf1\\ansi\\ansicpg1251 \\'cf\\'f0\\'e8\\'e2\\'e5\\'f2}"),
            "Привет"
        );
    }
}
