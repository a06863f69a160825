//! ZIP containers (Office Open XML, OpenDocument, EPUB) opened with limits: an archive
//! that declares more entries or more bytes than a document plausibly holds, or an entry
//! that inflates far beyond its compressed size, is refused before anything is inflated.
//! Entries are read as streams bounded by their declared size (the ZIP reader stops there
//! and checks the CRC), so a lying header cannot make a reader allocate more.

use std::io::{Cursor, Read};

use zip::ZipArchive;

/// Most entries an archive may list.
pub const MAX_ENTRIES: usize = 20_000;
/// Most bytes all entries may declare, inflated.
pub const MAX_TOTAL_BYTES: u64 = 1 << 30;
/// Most an entry may inflate to per compressed byte (past 1 MB; XML inflates 5 to 50 times).
pub const MAX_RATIO: u64 = 1_000;

/// The signature of a Compound File (old binary Office files, and encrypted new ones).
pub const CFB_MAGIC: [u8; 4] = [0xD0, 0xCF, 0x11, 0xE0];

pub struct Container<'a> {
    zip: ZipArchive<Cursor<&'a [u8]>>,
}

impl<'a> Container<'a> {
    /// Opens `bytes` as a ZIP archive; `what` names the format in messages ("Word document").
    pub fn open(bytes: &'a [u8], what: &str) -> Result<Self, String> {
        if bytes.starts_with(&CFB_MAGIC) {
            return Err(format!(
                "the {what} is encrypted (password-protected) or in an old binary format; save it without a password in the current format"
            ));
        }
        let mut zip = ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| format!("the {what} could not be opened: it is not a valid ZIP container ({e})"))?;
        if zip.len() > MAX_ENTRIES {
            return Err(format!(
                "the {what} holds {} files; the limit is {MAX_ENTRIES}",
                zip.len()
            ));
        }
        let mut total: u64 = 0;
        for i in 0..zip.len() {
            let entry = zip
                .by_index_raw(i)
                .map_err(|e| format!("the {what} is damaged: {e}"))?;
            if entry.encrypted() {
                return Err(format!("the {what} is encrypted (password-protected)"));
            }
            let size = entry.size();
            if size > 1 << 20 && size / entry.compressed_size().max(1) > MAX_RATIO {
                return Err(format!(
                    "the {what} looks like a decompression bomb: {} inflates {}-fold",
                    String::from_utf8_lossy(entry.name_raw()),
                    size / entry.compressed_size().max(1)
                ));
            }
            total = total.saturating_add(size);
        }
        if total > MAX_TOTAL_BYTES {
            return Err(format!(
                "the {what} would inflate to {} MB; the limit is {} MB",
                total >> 20,
                MAX_TOTAL_BYTES >> 20
            ));
        }
        Ok(Self { zip })
    }

    /// Names of the entries, in the archive's order.
    pub fn names(&self) -> Vec<String> {
        self.zip
            .file_names()
            .filter_map(Result::ok)
            .map(std::borrow::Cow::into_owned)
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.zip.index_for_name(name).is_some()
    }

    /// The entry `name` as text (UTF-8, invalid sequences replaced), or `None` when absent.
    pub fn text(&mut self, name: &str) -> Result<Option<String>, String> {
        let Some(i) = self.zip.index_for_name(name) else {
            return Ok(None);
        };
        let mut entry = self
            .zip
            .by_index(i)
            .map_err(|e| format!("{name} could not be read: {e}"))?;
        let mut bytes = Vec::new();
        // Bounded by the declared size, checked in `open`; the reader stops there.
        entry
            .by_ref()
            .take(MAX_TOTAL_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{name} could not be read: {e}"))?;
        Ok(Some(String::from_utf8(bytes).unwrap_or_else(|e| {
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        })))
    }

    /// Like [`Self::text`], an error when absent.
    pub fn required(&mut self, name: &str, what: &str) -> Result<String, String> {
        self.text(name)?
            .ok_or_else(|| format!("the {what} has no {name}; it is not a {what}"))
    }
}

#[cfg(test)]
pub mod tests {
    use std::io::Write;

    use zip::write::SimpleFileOptions;

    use super::*;

    /// A ZIP archive of `(name, content)` entries, deflated.
    pub fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, content) in entries {
            out.start_file(*name, SimpleFileOptions::default()).unwrap();
            out.write_all(content).unwrap();
        }
        out.finish().unwrap().into_inner()
    }

    #[test]
    fn a_decompression_bomb_is_refused_before_it_is_inflated() {
        let zeros = vec![0u8; 64 << 20];
        let bomb = archive(&[("word/document.xml", &zeros)]);
        assert!(bomb.len() < 1 << 20, "{}", bomb.len());
        let e = Container::open(&bomb, "Word document").err().unwrap();
        assert!(e.contains("decompression bomb"), "{e}");
    }

    #[test]
    fn not_a_zip_and_encrypted_files_are_named() {
        let e = Container::open(b"PK\x03\x04", "Word document").err().unwrap();
        assert!(e.contains("not a valid ZIP"), "{e}");
        let e = Container::open(&[0xD0, 0xCF, 0x11, 0xE0, 0, 0], "workbook")
            .err()
            .unwrap();
        assert!(e.contains("encrypted"), "{e}");
    }
}
