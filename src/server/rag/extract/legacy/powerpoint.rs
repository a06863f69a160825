//! PowerPoint 97–2003 (`.ppt`): the text atoms of each slide, read from the record
//! stream in one forward pass.

use super::{Compound, ansi, u16_at, u32_at, utf16};
use crate::server::rag::extract::{Extracted, office::Writer};

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
    let mut file = Compound::open(bytes, what)?;
    if file.is_stream("/EncryptedSummary") {
        return Err(format!("the {what} is encrypted (password-protected)"));
    }
    let records = file
        .stream("/PowerPoint Document")?
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::tests::documents::fixture;

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
}
