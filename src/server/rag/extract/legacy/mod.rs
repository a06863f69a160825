//! The binary Office formats of 1997–2007, all Compound Files (a small file system in a
//! file, read with the `cfb` crate): Word documents (`.doc`: the text of the main story,
//! put together from its piece table), PowerPoint presentations (`.ppt`: the text atoms of
//! each slide) and Outlook messages (`.msg`: the properties an e-mail is made of).
//! Every length read from the file is checked against what is there, and every walk
//! moves forward, so a hostile file costs time and memory linear in its size.

mod outlook;
mod powerpoint;
mod word;

use std::io::{Cursor, Read};

pub use self::{outlook::msg, powerpoint::ppt, word::doc};

/// An opened Compound File, with the format it should be (named in messages).
struct Compound<'a> {
    file: cfb::CompoundFile<Cursor<&'a [u8]>>,
    /// The file's size: no stream can hold more, whatever its header claims.
    size: usize,
    what: &'static str,
}

impl<'a> Compound<'a> {
    fn open(bytes: &'a [u8], what: &'static str) -> Result<Self, String> {
        let file = cfb::CompoundFile::open(Cursor::new(bytes))
            .map_err(|e| format!("the {what} could not be opened: it is not a valid Compound File ({e})"))?;
        Ok(Self {
            file,
            size: bytes.len(),
            what,
        })
    }

    fn is_stream(&self, path: &str) -> bool {
        self.file.is_stream(path)
    }

    /// A stream's bytes; none when there is no such stream.
    fn stream(&mut self, path: &str) -> Result<Option<Vec<u8>>, String> {
        if !self.file.is_stream(path) {
            return Ok(None);
        }
        let mut out = Vec::new();
        self.file
            .open_stream(path)
            .and_then(|s| s.take(self.size as u64).read_to_end(&mut out))
            .map_err(|e| format!("the {} is damaged: {path} cannot be read ({e})", self.what))?;
        Ok(Some(out))
    }
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

#[cfg(test)]
pub(crate) mod tests {
    pub use super::outlook::tests::msg_fixture;
    use super::{doc, msg, ppt};
    use crate::server::tests::documents::fixture;

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
