//! Word 97–2003 (`.doc`): the main story's text from the piece table.

use super::{Compound, ansi, u16_at, u32_at, utf16};
use crate::server::rag::extract::{Extracted, office::Writer};

/// The text of a Word 97–2003 document: its main story, paragraph by paragraph, table
/// cells joined by ` | `, field codes left out (their results kept).
pub fn doc(bytes: &[u8]) -> Result<Extracted, String> {
    let what = "Word document";
    let damaged = |part: &str| format!("the {what} is damaged: {part}");
    let mut file = Compound::open(bytes, what)?;
    let word = file
        .stream("/WordDocument")?
        .ok_or_else(|| format!("the file has no WordDocument stream; it is not a {what}"))?;
    // The header's fields, at fixed offsets or after its variable parts.
    let short = || damaged("its header is cut short");
    let half = |at| u16_at(&word, at).ok_or_else(short);
    let full = |at| u32_at(&word, at).map(|v| v as usize).ok_or_else(short);
    if u16_at(&word, 0) != Some(0xA5EC) {
        return Err(format!("the file is not a {what} (its header is not Word's)"));
    }
    let version = half(2)?;
    if version < 0x00C0 {
        return Err(format!(
            "the {what} is in the Word 6/95 format or older; save it in a newer format"
        ));
    }
    let flags = half(0x0A)?;
    if flags & 0x0100 != 0 {
        return Err(format!("the {what} is encrypted (password-protected)"));
    }
    // The header's variable parts: 16-bit words, 32-bit words, then (offset, length) pairs.
    let longs_at = 0x22 + 2 * usize::from(half(0x20)?) + 2;
    let main_chars = full(longs_at + 12)?;
    let pairs_at = longs_at + 4 * usize::from(half(longs_at - 2)?) + 2;
    let (clx_at, clx_len) = (full(pairs_at + 33 * 8)?, full(pairs_at + 33 * 8 + 4)?);
    let table_name = if flags & 0x0200 != 0 { "/1Table" } else { "/0Table" };
    let table = file
        .stream(table_name)?
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::tests::documents::fixture;

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
    fn fields_tables_and_breaks_become_plain_text() {
        let text = "See \u{13} HYPERLINK \"x\" \u{14}the map\u{15} here.\rName\u{07}Shed\u{07}\u{07}Ada\u{07}4\u{07}\u{07}";
        assert_eq!(story(text), "See the map here.\nName | Shed\nAda | 4\n");
        // A million nested field starts: linear, and nothing shows.
        let deep = "\u{13}".repeat(1_000_000) + "hidden";
        assert_eq!(story(&deep), "");
    }
}
