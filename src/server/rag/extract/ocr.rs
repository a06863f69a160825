//! PDFs through poppler and images through Tesseract, both run as programs by the
//! extraction process (so under its limits, which they inherit, and in its process group,
//! which the server kills whole when it gives up on a file).
//!
//! A PDF's text layer is read by poppler's `pdftotext` (page by page, split on form
//! feeds): on the real manuals of the evaluation corpus it reads more than `pdf-extract`
//! (text drawn with the `'` operator, which `pdf-extract` drops) at twice the speed
//! (`make bench-extract`). Pages without a text layer (scans) are rendered by `pdftoppm`
//! and read by Tesseract. Without poppler, `pdf-extract` reads the text layer alone.

use std::{
    io::{ErrorKind, Write},
    process::{Command, Stdio},
};

/// The languages Tesseract reads, and how the extraction process reports on its way.
pub struct Ocr<'a> {
    /// Tesseract's `-l` value (`eng`, `deu+eng`); empty: no OCR.
    pub languages: &'a str,
    /// Called with (pages read, pages to read) as OCR goes.
    pub progress: &'a dyn Fn(u32, u32),
    /// Told what was left out of a file read in part (for the server's log).
    pub note: &'a dyn Fn(&str),
}

impl Ocr<'_> {
    /// English, no progress reports (tests, benchmarks).
    pub const DEFAULT: Ocr<'static> = Ocr {
        languages: "eng",
        progress: &|_, _| {},
        note: &|_| {},
    };
}

/// Most pages of one PDF read by OCR (a page takes seconds); the rest are left out.
pub const MAX_OCR_PAGES: usize = 300;
/// Most pixels of an image given to OCR (an A4 page at 600 dpi is 35 million).
pub const MAX_IMAGE_PIXELS: u64 = 50_000_000;
/// Pages are rendered to fit this many pixels on their longer side (A4 at 300 dpi), so a
/// page that claims to be metres wide cannot ask for gigabytes.
const RENDER_PIXELS: u32 = 3508;

/// How running a helper program went.
pub enum Run {
    Output(Vec<u8>),
    /// Not installed on this server.
    Missing,
    Failed(String),
}

/// Runs `program` with `input` on stdin; its stdout, or why not.
fn run(program: &str, args: &[&str], input: &[u8]) -> Run {
    let child = Command::new(program)
        .args(args)
        // One thread: the server bounds each file's reading to one core's worth.
        .env("OMP_THREAD_LIMIT", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => return Run::Missing,
        Err(e) => return Run::Failed(format!("{program} could not be started: {e}")),
    };
    // Fed from a thread while the output is read, so neither pipe can fill and stall.
    let feeder = child.stdin.take().map(|mut stdin| {
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })
    });
    let output = child.wait_with_output();
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    match output {
        Ok(out) if out.status.success() => Run::Output(out.stdout),
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let first = err
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("no message");
            Run::Failed(format!("{program} stopped ({}): {first}", out.status))
        }
        Err(e) => Run::Failed(format!("{program} failed: {e}")),
    }
}

/// The text layer of each page, by poppler; `None` when poppler is not installed.
pub fn pdf_pages(pdf: &[u8]) -> Option<Result<Vec<String>, String>> {
    match run("pdftotext", &["-q", "-enc", "UTF-8", "-", "-"], pdf) {
        Run::Missing => None,
        Run::Failed(e) => Some(Err(e)),
        Run::Output(out) => {
            let text = String::from_utf8_lossy(&out);
            let mut pages: Vec<String> = text.split('\u{c}').map(str::to_owned).collect();
            // Every page ends with a form feed: the piece after the last one is not a page.
            if pages.last().is_some_and(|p| p.trim().is_empty()) {
                pages.pop();
            }
            Some(Ok(pages))
        }
    }
}

/// Whether a page has no text layer worth the name (a scan, or a figure).
pub fn needs_ocr(page: &str) -> bool {
    page.chars().filter(|c| c.is_alphanumeric()).count() < 3
}

/// Reads the pages of `pdf` that have no text (numbered from 0) by OCR, in place. Returns
/// a note for the user when some could not be read, or `Err` when OCR is needed for
/// every page and not possible.
pub fn read_scanned_pages(pdf: &[u8], pages: &mut [String], ocr: &Ocr) -> Result<Option<String>, String> {
    let textless: Vec<usize> = (0..pages.len()).filter(|&i| needs_ocr(&pages[i])).collect();
    if textless.is_empty() {
        return Ok(None);
    }
    let all_scanned = textless.len() == pages.len();
    if ocr.languages.is_empty() {
        return if all_scanned {
            Err("the PDF has no text layer (a scan?) and reading text from images is turned off (rag.ocr_languages)".into())
        } else {
            Ok(None)
        };
    }
    // A page without text or images is blank (manuals have one before each chapter):
    // nothing to read there.
    let wanted: Vec<usize> = textless.into_iter().filter(|&i| has_images(pdf, i + 1)).collect();
    if wanted.is_empty() {
        return Ok(None);
    }
    let total = wanted.len().min(MAX_OCR_PAGES);
    (ocr.progress)(0, total as u32);
    for (done, &i) in wanted.iter().take(total).enumerate() {
        let number = (i + 1).to_string();
        let image = match run(
            "pdftoppm",
            &[
                "-q",
                "-f",
                &number,
                "-l",
                &number,
                "-scale-to",
                &RENDER_PIXELS.to_string(),
                "-gray",
                "-png",
                "-",
            ],
            pdf,
        ) {
            Run::Output(png) => png,
            Run::Missing => return missing_program("pdftoppm (Debian: poppler-utils)", all_scanned),
            Run::Failed(e) => return Err(format!("page {number} could not be rendered for OCR: {e}")),
        };
        match tesseract(&image, ocr.languages) {
            Run::Output(text) => pages[i] = String::from_utf8_lossy(&text).into_owned(),
            Run::Missing => return missing_program("Tesseract (Debian: tesseract-ocr)", all_scanned),
            Run::Failed(e) => return Err(format!("page {number} could not be read by OCR: {e}")),
        }
        (ocr.progress)(done as u32 + 1, total as u32);
    }
    Ok((wanted.len() > total).then(|| {
        format!(
            "only the first {MAX_OCR_PAGES} of {} scanned pages were read",
            wanted.len()
        )
    }))
}

/// Whether page `number` (from 1) draws an image, by poppler's `pdfimages -list` (a few
/// milliseconds a page); when that cannot be told, it may.
fn has_images(pdf: &[u8], number: usize) -> bool {
    let number = number.to_string();
    match run("pdfimages", &["-list", "-f", &number, "-l", &number, "-"], pdf) {
        // Two header lines, then one line per image.
        Run::Output(list) => String::from_utf8_lossy(&list).lines().nth(2).is_some(),
        Run::Missing | Run::Failed(_) => true,
    }
}

/// Without a program OCR needs: an error when every page needed it, else the text layer
/// of the others is kept.
fn missing_program(what: &str, all_scanned: bool) -> Result<Option<String>, String> {
    if all_scanned {
        Err(format!(
            "the PDF has no text layer (a scan?) and reading it needs {what}, which is not installed on this server"
        ))
    } else {
        Ok(Some(format!(
            "pages without text were left out: {what} is not installed"
        )))
    }
}

fn tesseract(image: &[u8], languages: &str) -> Run {
    run("tesseract", &["stdin", "stdout", "-l", languages], image)
}

/// The text of an image (PNG, JPEG, TIFF; every page of a multi-page TIFF), checked
/// for its size first.
pub fn image_text(image: &[u8], ocr: &Ocr) -> Result<String, String> {
    let size = imagesize::blob_size(image).map_err(|e| format!("the image could not be read: {e}"))?;
    let pixels = size.width as u64 * size.height as u64;
    if pixels > MAX_IMAGE_PIXELS {
        return Err(format!(
            "the image is {}×{} pixels; the limit is {} million",
            size.width,
            size.height,
            MAX_IMAGE_PIXELS / 1_000_000
        ));
    }
    if ocr.languages.is_empty() {
        return Err("reading text from images is turned off on this server (rag.ocr_languages)".into());
    }
    (ocr.progress)(0, 1);
    let text = match tesseract(image, ocr.languages) {
        Run::Output(text) => String::from_utf8_lossy(&text).replace('\u{c}', "\n\n"),
        Run::Missing => {
            return Err(
                "reading text from images needs Tesseract (Debian: tesseract-ocr), which is not installed on this server"
                    .into(),
            );
        }
        Run::Failed(e) => return Err(format!("the image could not be read by OCR: {e}")),
    };
    (ocr.progress)(1, 1);
    Ok(text)
}
