//! The binary Office formats of 1997–2007, all Compound Files (a small file system in a
//! file, read with the `cfb` crate): Word documents (`.doc`: the text of the main story,
//! put together from its piece table), PowerPoint presentations (`.ppt`: the text atoms of
//! each slide) and Outlook messages (`.msg`: the properties an e-mail is made of).
//! Every length read from the file is checked against what is there, and every walk
//! moves forward, so a hostile file costs time and memory linear in its size.

use std::io::{Cursor, Read};

use super::{
    Extracted,
    office::Writer,
    textual::{Body, Message},
};

type Compound<'a> = cfb::CompoundFile<Cursor<&'a [u8]>>;

fn open<'a>(bytes: &'a [u8], what: &str) -> Result<Compound<'a>, String> {
    cfb::CompoundFile::open(Cursor::new(bytes))
        .map_err(|e| format!("the {what} could not be opened: it is not a valid Compound File ({e})"))
}

/// A stream's bytes; none when there is no such stream. A stream cannot hold more than
/// the file, so that bounds what is read whatever its header claims.
fn stream(file: &mut Compound<'_>, path: &str, limit: usize, what: &str) -> Result<Option<Vec<u8>>, String> {
    if !file.is_stream(path) {
        return Ok(None);
    }
    let mut out = Vec::new();
    file.open_stream(path)
        .and_then(|s| s.take(limit as u64).read_to_end(&mut out))
        .map_err(|e| format!("the {what} is damaged: {path} cannot be read ({e})"))?;
    Ok(Some(out))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn utf16(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

fn ansi(bytes: &[u8]) -> String {
    encoding_rs::WINDOWS_1252.decode(bytes).0.into_owned()
}

// ---- Word 97–2003 ----------------------------------------------------------------------

/// The text of a Word 97–2003 document: its main story, paragraph by paragraph, table
/// cells joined by ` | `, field codes left out (their results kept).
pub fn doc(bytes: &[u8]) -> Result<Extracted, String> {
    let what = "Word document";
    let damaged = |part: &str| format!("the {what} is damaged: {part}");
    let mut file = open(bytes, what)?;
    let word = stream(&mut file, "/WordDocument", bytes.len(), what)?
        .ok_or_else(|| format!("the file has no WordDocument stream; it is not a {what}"))?;
    if u16_at(&word, 0) != Some(0xA5EC) {
        return Err(format!("the file is not a {what} (its header is not Word's)"));
    }
    let version = u16_at(&word, 2).ok_or_else(|| damaged("its header is cut short"))?;
    if version < 0x00C0 {
        return Err(format!(
            "the {what} is in the Word 6/95 format or older; save it in a newer format"
        ));
    }
    let flags = u16_at(&word, 0x0A).ok_or_else(|| damaged("its header is cut short"))?;
    if flags & 0x0100 != 0 {
        return Err(format!("the {what} is encrypted (password-protected)"));
    }
    // The header's variable parts: 16-bit words, 32-bit words, then (offset, length) pairs.
    let words = usize::from(u16_at(&word, 0x20).ok_or_else(|| damaged("its header is cut short"))?);
    let longs_at = 0x22 + 2 * words + 2;
    let longs = usize::from(u16_at(&word, longs_at - 2).ok_or_else(|| damaged("its header is cut short"))?);
    let main_chars = u32_at(&word, longs_at + 12).ok_or_else(|| damaged("its header is cut short"))? as usize;
    let pairs_at = longs_at + 4 * longs + 2;
    let (clx_at, clx_len) = (
        u32_at(&word, pairs_at + 33 * 8).ok_or_else(|| damaged("its header is cut short"))? as usize,
        u32_at(&word, pairs_at + 33 * 8 + 4).ok_or_else(|| damaged("its header is cut short"))? as usize,
    );
    let table_name = if flags & 0x0200 != 0 { "/1Table" } else { "/0Table" };
    let table = stream(&mut file, table_name, bytes.len(), what)?
        .ok_or_else(|| damaged(&format!("it has no {} stream", &table_name[1..])))?;
    let clx = table
        .get(clx_at..clx_at.saturating_add(clx_len))
        .ok_or_else(|| damaged("its piece table lies outside the file"))?;
    let pieces = piece_table(clx).ok_or_else(|| damaged("its piece table cannot be read"))?;
    let text = pieces_text(&word, &pieces, main_chars)
        .ok_or_else(|| damaged("a piece of its text lies outside the file"))?;
    let mut w = Writer::default();
    for paragraph in story(&text).split('\n') {
        w.paragraph(paragraph);
    }
    Ok(Extracted {
        text: w.out,
        title: None,
    })
}

/// A piece of the text: characters `cp_start..cp_end` stored at `fc` (8-bit when
/// `compressed`, else UTF-16).
struct Piece {
    cp_start: usize,
    cp_end: usize,
    fc: usize,
    compressed: bool,
}

/// The piece table in the `Clx` structure: property runs to skip, then the pieces.
fn piece_table(clx: &[u8]) -> Option<Vec<Piece>> {
    let mut at = 0;
    loop {
        match *clx.get(at)? {
            0x01 => at += 3 + usize::from(u16_at(clx, at + 1)?),
            0x02 => break,
            _ => return None,
        }
    }
    let len = u32_at(clx, at + 1)? as usize;
    let plc = clx.get(at + 5..(at + 5).checked_add(len)?)?;
    if plc.len() < 4 || (plc.len() - 4) % 12 != 0 {
        return None;
    }
    let n = (plc.len() - 4) / 12;
    let cp = |i: usize| u32_at(plc, 4 * i).map(|c| c as usize);
    (0..n)
        .map(|i| {
            let fc = u32_at(plc, 4 * (n + 1) + 8 * i + 2)?;
            let compressed = fc & 0x4000_0000 != 0;
            let fc = (fc & 0x3FFF_FFFF) as usize;
            Some(Piece {
                cp_start: cp(i)?,
                cp_end: cp(i + 1)?,
                fc: if compressed { fc / 2 } else { fc },
                compressed,
            })
        })
        .collect()
}

/// The first `chars` characters of the document (its main story), from its pieces.
fn pieces_text(word: &[u8], pieces: &[Piece], chars: usize) -> Option<String> {
    let mut out = String::new();
    for piece in pieces {
        if piece.cp_start >= chars {
            break;
        }
        let n = piece.cp_end.min(chars).saturating_sub(piece.cp_start);
        if piece.compressed {
            out.push_str(&ansi(word.get(piece.fc..piece.fc.checked_add(n)?)?));
        } else {
            out.push_str(&utf16(word.get(piece.fc..piece.fc.checked_add(2 * n)?)?));
        }
    }
    Some(out)
}

/// Word's special characters as text: paragraphs and breaks as newlines, table cells
/// joined by ` | ` (a row ends with a second cell mark), field codes (between a field's
/// begin and separator marks) left out, their results kept.
fn story(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // For each open field, whether its code (rather than its result) is being read, and
    // how many are.
    let mut fields: Vec<bool> = Vec::new();
    let mut in_code = 0usize;
    let mut after_cell = false;
    for c in text.chars() {
        match c {
            '\u{13}' => {
                fields.push(true);
                in_code += 1;
            }
            '\u{14}' => {
                if let Some(code) = fields.last_mut().filter(|code| **code) {
                    *code = false;
                    in_code -= 1;
                }
            }
            '\u{15}' => {
                if fields.pop() == Some(true) {
                    in_code -= 1;
                }
            }
            _ if in_code > 0 => {}
            '\u{07}' if after_cell => {
                // The row's end mark: the row is one line.
                let trimmed = out.trim_end_matches([' ', '|']).len();
                out.truncate(trimmed);
                out.push('\n');
                after_cell = false;
                continue;
            }
            '\u{07}' => {
                out.push_str(" | ");
                after_cell = true;
                continue;
            }
            '\r' | '\u{0B}' | '\u{0C}' => out.push('\n'),
            '\u{1E}' => out.push('-'),
            '\u{A0}' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
        after_cell = false;
    }
    out
}

// ---- PowerPoint 97–2003 ----------------------------------------------------------------

const SLIDE: u16 = 0x03EE;
const NOTES: u16 = 0x03F0;
const MAIN_MASTER: u16 = 0x03F8;
const HANDOUT: u16 = 0x0FC9;
const SLIDE_LIST_WITH_TEXT: u16 = 0x0FF0;
const SLIDE_PERSIST: u16 = 0x03F3;
const TEXT_CHARS: u16 = 0x0FA0;
const TEXT_BYTES: u16 = 0x0FA8;

/// The text of a PowerPoint 97–2003 presentation, slide by slide ("Slide 2: Title"):
/// what the slide list holds for each slide, then the text boxes drawn on it. Masters,
/// notes and handouts are left out.
pub fn ppt(bytes: &[u8]) -> Result<Extracted, String> {
    let what = "PowerPoint presentation";
    let mut file = open(bytes, what)?;
    if file.is_stream("/EncryptedSummary") {
        return Err(format!("the {what} is encrypted (password-protected)"));
    }
    let records = stream(&mut file, "/PowerPoint Document", bytes.len(), what)?
        .ok_or_else(|| format!("the file has no PowerPoint Document stream; it is not a {what}"))?;
    // Text by slide: from the slide list (placeholders), and from the slides' drawings.
    let mut listed: Vec<Vec<String>> = Vec::new();
    let mut drawn: Vec<Vec<String>> = Vec::new();
    // Where the text atoms met go, and up to which offset.
    let mut into: Option<(bool, usize)> = None;
    let mut at = 0;
    while let (Some(head), Some(kind), Some(len)) = (
        u16_at(&records, at),
        u16_at(&records, at + 2),
        u32_at(&records, at + 4),
    ) {
        let len = len as usize;
        let end = (at + 8).saturating_add(len);
        if into.is_some_and(|(_, until)| at >= until) {
            into = None;
        }
        let container = head & 0x000F == 0x000F;
        let instance = head >> 4;
        match kind {
            MAIN_MASTER | NOTES | HANDOUT => {
                at = end;
                continue;
            }
            SLIDE_LIST_WITH_TEXT if instance != 0 => {
                at = end;
                continue;
            }
            SLIDE_LIST_WITH_TEXT => into = Some((true, end)),
            SLIDE => {
                drawn.push(Vec::new());
                into = Some((false, end));
            }
            SLIDE_PERSIST if into.is_some_and(|(list, _)| list) => listed.push(Vec::new()),
            TEXT_CHARS | TEXT_BYTES => {
                let Some(raw) = records.get(at + 8..end) else {
                    break;
                };
                let text = if kind == TEXT_CHARS { utf16(raw) } else { ansi(raw) };
                let target = match into {
                    Some((true, _)) => listed.last_mut(),
                    Some((false, _)) => drawn.last_mut(),
                    None => None,
                };
                if let Some(slide) = target {
                    let text = text.replace(['\r', '\u{0B}'], "\n");
                    // A lone `*` is a slide-number field.
                    if !text.trim().is_empty() && text.trim() != "*" && !slide.contains(&text) {
                        slide.push(text);
                    }
                }
            }
            _ => {}
        }
        at = if container { at + 8 } else { end };
    }
    let slides = listed.len().max(drawn.len());
    if slides == 0 {
        return Err(format!("the {what} has no slides that could be read"));
    }
    let mut w = Writer::default();
    for i in 0..slides {
        let mut texts: Vec<&String> = listed.get(i).into_iter().flatten().collect();
        for t in drawn.get(i).into_iter().flatten() {
            if !texts.contains(&t) {
                texts.push(t);
            }
        }
        let (title, body) = match texts.split_first() {
            Some((first, rest)) if !first.contains('\n') => (Some(first.trim()), rest),
            _ => (None, &texts[..]),
        };
        match title {
            Some(t) => w.heading(1, &format!("Slide {}: {t}", i + 1)),
            None => w.heading(1, &format!("Slide {}", i + 1)),
        }
        for text in body {
            w.paragraph(text);
        }
    }
    Ok(Extracted {
        text: w.out,
        title: None,
    })
}

// ---- Outlook messages ------------------------------------------------------------------

/// A property of the message: its stream as UTF-16 (`001F`) or 8-bit (`001E`) text.
fn property(file: &mut Compound<'_>, storage: &str, id: u16, limit: usize) -> Result<Option<String>, String> {
    let what = "Outlook message";
    if let Some(raw) = stream(file, &format!("{storage}/__substg1.0_{id:04X}001F"), limit, what)? {
        return Ok(Some(utf16(&raw).trim_end_matches('\0').to_owned()));
    }
    Ok(
        stream(file, &format!("{storage}/__substg1.0_{id:04X}001E"), limit, what)?
            .map(|raw| ansi(&raw).trim_end_matches('\0').to_owned()),
    )
}

/// The time the message was sent (or delivered), from its fixed-size properties.
fn sent(file: &mut Compound<'_>, limit: usize) -> Result<Option<String>, String> {
    let Some(props) = stream(file, "/__properties_version1.0", limit, "Outlook message")? else {
        return Ok(None);
    };
    // 32 bytes of header, then 16-byte entries: tag (type, id), flags, value.
    let value = |tag: u32| {
        props.get(32..)?.chunks_exact(16).find_map(|e| {
            (u32_at(e, 0)? == tag)
                .then(|| u64::from_le_bytes([e[8], e[9], e[10], e[11], e[12], e[13], e[14], e[15]]))
        })
    };
    // Client submit time, else delivery time: 100 ns ticks since 1601.
    Ok(value(0x0039_0040)
        .or_else(|| value(0x0E06_0040))
        .and_then(|ticks| {
            let seconds = i64::try_from(ticks / 10_000_000).ok()? - 11_644_473_600;
            (seconds > 0).then(|| mail_parser::DateTime::from_timestamp(seconds).to_rfc3339())
        }))
}

/// An Outlook message (`.msg`) like an e-mail: subject as the heading, sender,
/// recipients and date, the body (plain text, else its HTML as text), attachment names.
pub fn msg(bytes: &[u8]) -> Result<Extracted, String> {
    let what = "Outlook message";
    let limit = bytes.len();
    let mut file = open(bytes, what)?;
    if !file.is_stream("/__properties_version1.0") {
        return Err(format!("the file has no message properties; it is not an {what}"));
    }
    let subject = property(&mut file, "", 0x0037, limit)?;
    let from = match (
        property(&mut file, "", 0x0C1A, limit)?,
        property(&mut file, "", 0x5D01, limit)?.or(property(&mut file, "", 0x0C1F, limit)?),
    ) {
        (Some(name), Some(address)) if address.contains('@') => Some(format!("{name} <{address}>")),
        (Some(name), _) => Some(name),
        (None, address) => address,
    };
    let body = match property(&mut file, "", 0x1000, limit)? {
        Some(text) if !text.trim().is_empty() => Body::Text(text),
        _ => Body::Html(
            stream(&mut file, "/__substg1.0_10130102", limit, what)?
                .map(|html| String::from_utf8_lossy(&html).into_owned())
                .unwrap_or_default(),
        ),
    };
    let storages: Vec<String> = file
        .read_root_storage()
        .filter(|e| e.is_storage() && e.name().starts_with("__attach_version1.0_"))
        .map(|e| e.path().to_string_lossy().into_owned())
        .collect();
    let mut attachments = Vec::new();
    for storage in storages {
        if let Some(name) =
            property(&mut file, &storage, 0x3707, limit)?.or(property(&mut file, &storage, 0x3704, limit)?)
        {
            attachments.push(name);
        }
    }
    Ok(Message {
        subject,
        from,
        to: property(&mut file, "", 0x0E04, limit)?,
        cc: property(&mut file, "", 0x0E03, limit)?,
        date: sent(&mut file, limit)?,
        body,
        attachments,
    }
    .text())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/src/server/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// An Outlook message made here: the properties Outlook writes for an e-mail with
    /// one attachment (a Compound File written by the `cfb` crate).
    pub fn msg_fixture() -> Vec<u8> {
        let mut file = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        let text = |s: &str| s.encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>();
        let mut props = vec![0u8; 32];
        // Client submit time: 2026-03-02T09:30:00Z in 100 ns ticks since 1601.
        let ticks: u64 = (1_772_443_800 + 11_644_473_600) * 10_000_000;
        props.extend(0x0039_0040u32.to_le_bytes());
        props.extend(6u32.to_le_bytes());
        props.extend(ticks.to_le_bytes());
        for (path, data) in [
            ("/__properties_version1.0", props),
            ("/__substg1.0_0037001F", text("Boat shed keys")),
            ("/__substg1.0_0C1A001F", text("Maren Holt")),
            ("/__substg1.0_5D01001F", text("maren@example.org")),
            ("/__substg1.0_0E04001F", text("Harbour crew")),
            (
                "/__substg1.0_1000001F",
                text(
                    "The spare keys to the boat shed are in the red tin behind the tide table.\r\n\r\n# not a heading",
                ),
            ),
        ] {
            file.create_stream(path).unwrap().write_all(&data).unwrap();
        }
        file.create_storage("/__attach_version1.0_#00000000").unwrap();
        file.create_stream("/__attach_version1.0_#00000000/__substg1.0_3707001F")
            .unwrap()
            .write_all(&text("shed-plan.pdf"))
            .unwrap();
        file.flush().unwrap();
        file.into_inner().into_inner()
    }

    #[test]
    fn a_word_97_document_gives_its_paragraphs() {
        let e = doc(&fixture("memo.doc")).unwrap();
        assert!(
            e.text
                .contains("The winter ferry to Kestrel Island leaves the north quay at 07:40"),
            "{}",
            e.text
        );
        assert!(e.text.contains("Kayaks are kept in shed four"), "{}", e.text);
        assert!(e.text.contains("Ferry timetable\n\n"), "{}", e.text);
    }

    #[test]
    fn a_powerpoint_97_presentation_gives_its_slides() {
        let e = ppt(&fixture("rota.ppt")).unwrap();
        assert!(e.text.contains("# Slide 1: Lighthouse crew rota"), "{}", e.text);
        assert!(e.text.contains("# Slide 2: Supplies"), "{}", e.text);
        assert!(e.text.contains("every second Thursday"), "{}", e.text);
        assert!(
            !e.text.contains("Click to edit Master"),
            "masters are left out: {}",
            e.text
        );
    }

    #[test]
    fn an_outlook_message_reads_like_an_email() {
        let e = msg(&msg_fixture()).unwrap();
        assert_eq!(e.title.as_deref(), Some("Boat shed keys"));
        for part in [
            "# Boat shed keys",
            "From: Maren Holt <maren@example.org>",
            "To: Harbour crew",
            "Date: 2026-03-02T09:30:00Z",
            "in the red tin behind the tide table",
            "Attachments: shed-plan.pdf",
        ] {
            assert!(e.text.contains(part), "{part:?} in {}", e.text);
        }
        assert!(
            !e.text.contains("\n# not a heading"),
            "body lines are not headings: {}",
            e.text
        );
    }

    #[test]
    fn fields_tables_and_breaks_become_plain_text() {
        let text = "See \u{13} HYPERLINK \"x\" \u{14}the map\u{15} here.\rName\u{07}Shed\u{07}\u{07}Ada\u{07}4\u{07}\u{07}";
        assert_eq!(story(text), "See the map here.\nName | Shed\nAda | 4\n");
        // A million nested field starts: linear, and nothing shows.
        let deep = "\u{13}".repeat(1_000_000) + "hidden";
        assert_eq!(story(&deep), "");
    }

    #[test]
    fn damaged_and_disguised_files_fail_with_a_reason() {
        let memo = fixture("memo.doc");
        for (name, bytes, expected) in [
            (
                "not a compound file",
                b"hello there".to_vec(),
                "not a valid Compound File",
            ),
            (
                "cut short",
                memo[..memo.len() / 3].to_vec(),
                "could not be opened",
            ),
            ("a message as a document", msg_fixture(), "no WordDocument stream"),
        ] {
            let e = doc(&bytes).unwrap_err();
            assert!(e.contains(expected), "{name}: {e}");
        }
        assert!(ppt(&memo).unwrap_err().contains("no PowerPoint Document stream"));
        assert!(msg(&memo).unwrap_err().contains("not an Outlook message"));
        // Every byte of the header and piece table flipped in turn: an error or text, never
        // a panic.
        for at in (0..memo.len()).step_by(7) {
            let mut bad = memo.clone();
            bad[at] ^= 0xFF;
            let _ = doc(&bad);
            let _ = ppt(&bad);
        }
    }
}
