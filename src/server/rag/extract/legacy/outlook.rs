//! Outlook messages (`.msg`): the properties an e-mail is made of, laid out as an
//! `.eml` is.

use super::{Compound, ansi, u32_at, utf16};
use crate::server::rag::extract::{
    Extracted,
    textual::{Body, Message},
};

/// The stream of the message's fixed-size properties (every message has one).
const PROPERTIES: &str = "/__properties_version1.0";

/// The first of the properties `ids` the message (or its `storage`) has: its stream as
/// UTF-16 (`001F`) or 8-bit (`001E`) text.
fn property(file: &mut Compound<'_>, storage: &str, ids: &[u16]) -> Result<Option<String>, String> {
    for id in ids {
        if let Some(raw) = file.stream(&format!("{storage}/__substg1.0_{id:04X}001F"))? {
            return Ok(Some(utf16(&raw).trim_end_matches('\0').to_owned()));
        }
        if let Some(raw) = file.stream(&format!("{storage}/__substg1.0_{id:04X}001E"))? {
            return Ok(Some(ansi(&raw).trim_end_matches('\0').to_owned()));
        }
    }
    Ok(None)
}

/// The time the message was sent (or delivered), from its fixed-size properties.
fn sent(file: &mut Compound<'_>) -> Result<Option<String>, String> {
    let Some(props) = file.stream(PROPERTIES)? else {
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
    let mut file = Compound::open(bytes, what)?;
    if !file.is_stream(PROPERTIES) {
        return Err(format!("the file has no message properties; it is not an {what}"));
    }
    let subject = property(&mut file, "", &[0x0037])?;
    // The sender's name, and their SMTP address (else whatever address type they have).
    let from = match (
        property(&mut file, "", &[0x0C1A])?,
        property(&mut file, "", &[0x5D01, 0x0C1F])?,
    ) {
        (Some(name), Some(address)) if address.contains('@') => Some(format!("{name} <{address}>")),
        (Some(name), _) => Some(name),
        (None, address) => address,
    };
    let body = match property(&mut file, "", &[0x1000])? {
        Some(text) if !text.trim().is_empty() => Body::Text(text),
        _ => Body::Html(
            file.stream("/__substg1.0_10130102")?
                .map(|html| String::from_utf8_lossy(&html).into_owned())
                .unwrap_or_default(),
        ),
    };
    let storages: Vec<String> = file
        .file
        .read_root_storage()
        .filter(|e| e.is_storage() && e.name().starts_with("__attach_version1.0_"))
        .map(|e| e.path().to_string_lossy().into_owned())
        .collect();
    let mut attachments = Vec::new();
    for storage in storages {
        // The long file name, else the 8.3 one.
        if let Some(name) = property(&mut file, &storage, &[0x3707, 0x3704])? {
            attachments.push(name);
        }
    }
    Ok(Message {
        subject,
        from,
        to: property(&mut file, "", &[0x0E04])?,
        cc: property(&mut file, "", &[0x0E03])?,
        date: sent(&mut file)?,
        body,
        attachments,
    }
    .text())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::{Cursor, Write};

    use super::*;

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
            (PROPERTIES, props),
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
}
