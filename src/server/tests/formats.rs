//! Every format a user brings, uploaded over HTTP and searched: the passage that answers
//! is found with its section (a Word heading, a slide, a sheet's rows, a code definition),
//! and hostile containers fail alone with their reason while what was stored stays.

use serde_json::{Value, json};

use super::{
    documents::{best, fixture, upload, upload_ready},
    support::{post_json, spawn_app},
};
use crate::server::rag::extract::{container::tests::archive, legacy, office, rtf, tables};

const EMAIL: &str = "From: Facilities <facilities@example.org>\r\nTo: staff@example.org\r\n\
    Subject: Bicycle shed moves\r\nDate: Mon, 7 Dec 2026 09:00:00 +0000\r\n\
    Content-Type: text/plain; charset=utf-8\r\n\r\n\
    From Monday the bicycle shed is behind the north car park, next to the bins.\r\n";

const CODE: &str = "//! Invoice tools.\n\nuse std::fmt;\n\n\
    /// Adds value-added tax at the standard rate of nineteen percent.\n\
    pub fn with_vat(net_cents: u64) -> u64 {\n    net_cents * 119 / 100\n}\n\n\
    pub struct Invoice {\n    pub number: u32,\n}\n";

#[tokio::test]
async fn office_files_sheets_mail_and_code_are_cited_with_their_section() {
    let app = spawn_app().await;
    let mut csv = String::from("Station,Line,Step-free access\n");
    for (station, line, access) in [
        ("Alder Road", "Green", "yes"),
        ("Birch Hill", "Green", "no"),
        ("Quarry Gate", "Blue", "lift under repair until March"),
    ] {
        csv.push_str(&format!("{station},{line},{access}\n"));
    }
    upload_ready(
        &app,
        vec![
            ("leave-policy.docx", fixture("leave-policy.docx")),
            ("budget.xlsx", tables::tests::xlsx_fixture()),
            ("stations.csv", csv.into_bytes()),
            ("shed.eml", EMAIL.as_bytes().to_vec()),
            ("invoice.rs", CODE.as_bytes().to_vec()),
            ("roadmap.pptx", office::tests::pptx_fixture()),
            ("grades.odt", office::tests::odt_fixture()),
            ("book.epub", office::tests::epub_fixture()),
            ("ferry.pdf", fixture("ferry.pdf")),
            ("minutes.rtf", rtf::tests::fixture()),
            ("memo.doc", fixture("memo.doc")),
            ("rota.ppt", fixture("rota.ppt")),
            ("keys.msg", legacy::tests::msg_fixture()),
        ],
        None,
    )
    .await;
    for (query, title, heading, text) in [
        (
            "How many weeks of parental leave do parents get?",
            "leave-policy",
            "Parental leave",
            "sixteen weeks",
        ),
        (
            "How much budget does the lighthouse crew have?",
            "budget",
            "Budget > Rows 2–3",
            "Lighthouse crew | 48000",
        ),
        (
            "Is Quarry Gate station step-free?",
            "stations",
            "Rows 2–4",
            "Station | Line | Step-free access",
        ),
        (
            "Where is the bicycle shed now?",
            "shed",
            "Bicycle shed moves",
            "north car park",
        ),
        (
            "How often is the boiler room inspected?",
            "minutes",
            "Boiler room",
            "every second Tuesday",
        ),
        // The binary formats of Office 97–2003 (a Word document's headings are not read).
        (
            "When does the winter ferry to Kestrel Island leave the quay?",
            "memo",
            "",
            "leaves the north quay at 07:40",
        ),
        (
            "How often is paraffin delivered by the supply boat?",
            "rota",
            "Slide 2: Supplies",
            "every second Thursday",
        ),
        (
            "Where are the spare keys to the boat shed?",
            "keys",
            "Boat shed keys",
            "red tin behind the tide table",
        ),
        (
            "How is VAT added to an invoice amount?",
            "invoice",
            "pub fn with_vat(net_cents: u64) -> u64",
            "nineteen percent",
        ),
    ] {
        let p = best(&app, query).await;
        assert_eq!(p["document_title"], title, "{query}: {p}");
        assert_eq!(p["heading"].as_str().unwrap_or(""), heading, "{query}: {p}");
        assert!(p["text"].as_str().unwrap().contains(text), "{query}: {p}");
    }
    // The table's header row travels with its rows; the code's language is recorded.
    let docs: Value = reqwest::get(format!("{}/api/v1/documents", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let media = |name: &str| {
        docs.as_array()
            .or_else(|| docs["documents"].as_array())
            .unwrap()
            .iter()
            .find(|d| d["file_name"] == name)
            .map(|d| d["media_type"].clone())
            .unwrap_or_else(|| panic!("{name} in {docs}"))
    };
    assert_eq!(media("invoice.rs"), "text/x-rust");
    assert_eq!(media("shed.eml"), "message/rfc822");
    assert_eq!(media("memo.doc"), "application/msword");
    assert_eq!(media("keys.msg"), "application/vnd.ms-outlook");
}

#[tokio::test]
async fn hostile_containers_fail_alone_with_their_reason() {
    let app = spawn_app().await;
    upload_ready(
        &app,
        vec![("leave-policy.docx", fixture("leave-policy.docx"))],
        None,
    )
    .await;
    let zeros = vec![0u8; 64 << 20];
    let deep = format!(
        "<w:document xmlns:w=\"w\"><w:body>{}<w:p><w:r><w:t>deep text</w:t></w:r></w:p>{}</w:body></w:document>",
        "<w:sdt>".repeat(200_000),
        "</w:sdt>".repeat(200_000)
    );
    let many: Vec<(String, Vec<u8>)> = (0..20_001).map(|i| (format!("f{i}.xml"), Vec::new())).collect();
    let many: Vec<(&str, &[u8])> = many.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    let (status, outcomes) = upload(
        &app,
        vec![
            ("bomb.docx", archive(&[("word/document.xml", &zeros)])),
            ("deep.docx", archive(&[("word/document.xml", deep.as_bytes())])),
            ("many.xlsx", archive(&many)),
            ("locked.xlsx", [&[0xD0, 0xCF, 0x11, 0xE0][..], &[0; 508]].concat()),
            ("broken.pptx", archive(&[("ppt/slides/slide1.xml", b"<p:sld>")])),
            ("hollow.doc", [&[0xD0, 0xCF, 0x11, 0xE0][..], &[0; 1020]].concat()),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200, "{outcomes}");
    let ingest = app.state.ingest().unwrap();
    let mut reasons = Vec::new();
    for o in outcomes.as_array().unwrap() {
        let id = o["document"]["id"].as_str().unwrap_or_else(|| panic!("{o}"));
        let doc = ingest
            .wait(super::support::ME, id, std::time::Duration::from_secs(120))
            .await
            .unwrap();
        reasons.push((
            doc.file_name.clone(),
            format!("{:?}", doc.status),
            doc.error.clone().unwrap_or_default(),
        ));
    }
    let reason = |name: &str| reasons.iter().find(|r| r.0 == name).unwrap().clone();
    assert!(
        reason("bomb.docx").2.contains("decompression bomb"),
        "{reasons:?}"
    );
    assert_eq!(reason("deep.docx").1, "Ready", "{reasons:?}");
    assert!(
        reason("many.xlsx").2.contains("the limit is 20000"),
        "{reasons:?}"
    );
    assert!(reason("locked.xlsx").2.contains("encrypted"), "{reasons:?}");
    assert!(
        reason("broken.pptx").2.contains("not a PowerPoint presentation"),
        "{reasons:?}"
    );
    assert!(
        reason("hollow.doc")
            .2
            .contains("Word document could not be opened"),
        "{reasons:?}"
    );
    // What was stored before is still found.
    assert!(
        best(&app, "parental leave weeks").await["text"]
            .as_str()
            .unwrap()
            .contains("sixteen weeks")
    );
}

/// Words of three letters or more, lower-cased.
fn words(text: &str) -> std::collections::HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3 && w.starts_with(char::is_alphabetic))
        .map(str::to_lowercase)
        .collect()
}

/// Real manuals (R's, from Debian's r-doc-pdf, fetched for the retrieval evaluation): every
/// one is read by poppler with at least the words `pdf-extract` (the reader before it, kept
/// for servers without poppler) finds, and its pages come in order, none past the last.
#[test]
fn real_pdfs_are_read_with_every_word_and_their_pages_in_order() {
    use crate::server::rag::extract::{Kind, extract, pdf_extract_pages};
    let paths =
        crate::server::rag::eval::Paths::default_for(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
    let dir = paths.corpus.join("r-doc-pdf");
    let mut pdfs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{} (make eval-corpus fetches it): {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pdf"))
        .collect();
    pdfs.sort();
    assert!(pdfs.len() >= 5, "{pdfs:?}");
    for pdf in pdfs {
        let bytes = std::fs::read(&pdf).unwrap();
        let before = words(&pdf_extract_pages(&bytes).unwrap_or_default().join("\n"));
        let e = extract(Kind::Pdf, &bytes).unwrap_or_else(|e| panic!("{}: {e}", pdf.display()));
        let ours = words(&e.text);
        let found = before.intersection(&ours).count() as f64 / before.len().max(1) as f64;
        assert!(
            found >= 0.95,
            "{}: only {found:.3} of pdf-extract's words",
            pdf.display()
        );
        let info = std::process::Command::new("pdfinfo")
            .arg(&pdf)
            .output()
            .expect("pdfinfo (poppler-utils, installed by setup)");
        let count: u32 = String::from_utf8_lossy(&info.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("Pages:")?.trim().parse().ok())
            .unwrap();
        let pages: Vec<u32> = e
            .text
            .lines()
            .filter_map(|l| l.strip_prefix("# p. ")?.parse().ok())
            .collect();
        assert!(pages.len() > 10, "{}: {pages:?}", pdf.display());
        assert!(
            pages.windows(2).all(|w| w[0] < w[1]) && pages.last() <= Some(&count),
            "{}: {pages:?} of {count}",
            pdf.display()
        );
    }
}

/// Pages of `pdf` as poppler renders them, grey, as (width, height, pixels).
fn rendered_pages(pdf: &[u8], dpi: u32) -> Vec<(u32, u32, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.pdf");
    std::fs::write(&file, pdf).unwrap();
    let root = dir.path().join("page");
    let ok = std::process::Command::new("pdftoppm")
        .args(["-r", &dpi.to_string(), "-gray"])
        .arg(&file)
        .arg(&root)
        .status()
        .unwrap();
    assert!(ok.success());
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pgm"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            // Binary PGM: "P5", width, height, maxval, one whitespace, then the pixels.
            let bytes = std::fs::read(f).unwrap();
            let mut fields = Vec::new();
            let mut at = 2;
            while fields.len() < 3 {
                while bytes[at].is_ascii_whitespace() {
                    at += 1;
                }
                let start = at;
                while !bytes[at].is_ascii_whitespace() {
                    at += 1;
                }
                fields.push(
                    std::str::from_utf8(&bytes[start..at])
                        .unwrap()
                        .parse::<u32>()
                        .unwrap(),
                );
            }
            (fields[0], fields[1], bytes[at + 1..].to_vec())
        })
        .collect()
}

/// A PDF of page images with no text layer, as a scanner makes them (each image a
/// deflated grey raster filling a Letter page).
fn scanned_pdf(pages: &[(u32, u32, Vec<u8>)]) -> Vec<u8> {
    use std::io::Write;
    let mut objects: Vec<Vec<u8>> = vec![b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(), Vec::new()];
    let mut kids = Vec::new();
    for (w, h, pixels) in pages {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(pixels).unwrap();
        let data = z.finish().unwrap();
        let mut image = format!(
            "<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray \
             /BitsPerComponent 8 /Filter /FlateDecode /Length {} >>\nstream\n",
            data.len()
        )
        .into_bytes();
        image.extend_from_slice(&data);
        image.extend_from_slice(b"\nendstream");
        objects.push(image);
        let image_ref = objects.len();
        let ops = "q 612 0 0 792 0 0 cm /Im0 Do Q";
        objects.push(format!("<< /Length {} >>\nstream\n{ops}\nendstream", ops.len()).into_bytes());
        let content_ref = objects.len();
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_ref} 0 R \
                 /Resources << /XObject << /Im0 {image_ref} 0 R >> >> >>"
            )
            .into_bytes(),
        );
        kids.push(format!("{} 0 R", objects.len()));
    }
    objects[1] = format!(
        "<< /Type /Pages /Kids [{}] /Count {} >>",
        kids.join(" "),
        kids.len()
    )
    .into_bytes();
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[tokio::test]
async fn scanned_pages_and_images_are_read_by_ocr() {
    let app = spawn_app().await;
    let pages = rendered_pages(&fixture("ferry.pdf"), 200);
    assert_eq!(pages.len(), 3);
    let scan = scanned_pdf(&pages);
    // Nothing in the scan is text until OCR reads it.
    assert!(!String::from_utf8_lossy(&scan).contains("Bicycles"));
    // A photo of the lighthouse page, as PNG (poppler renders it).
    let photo = std::process::Command::new("pdftoppm")
        .args(["-r", "150", "-gray", "-png", "-"])
        .stdin(std::fs::File::open(super::documents::fixture_path("lighthouse.pdf")).unwrap())
        .output()
        .unwrap()
        .stdout;
    assert!(photo.starts_with(b"\x89PNG"));
    upload_ready(
        &app,
        vec![("scanned-ferry.pdf", scan), ("lamp-photo.png", photo)],
        None,
    )
    .await;
    let p = best(&app, "Do bicycles cost extra on the ferry?").await;
    assert_eq!(p["document_title"], "scanned-ferry", "{p}");
    assert_eq!(p["heading"], "p. 3", "{p}");
    assert!(p["text"].as_str().unwrap().contains("free of charge"), "{p}");
    let p = best(&app, "Where are the replacement bulbs for the lamp kept?").await;
    assert_eq!(p["document_title"], "lamp-photo", "{p}");
    assert!(p["text"].as_str().unwrap().contains("east cellar"), "{p}");

    // An image that claims to be enormous fails with its size; a file named .png that is
    // not one is refused.
    let mut huge = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    huge.extend_from_slice(&100_000u32.to_be_bytes());
    huge.extend_from_slice(&100_000u32.to_be_bytes());
    huge.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0, 0]);
    let (status, outcomes) = upload(
        &app,
        vec![("huge.png", huge), ("fake.png", b"hello".to_vec())],
        None,
    )
    .await;
    assert_eq!(status, 200, "{outcomes}");
    assert!(
        outcomes[1]["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not a PNG image"),
        "{outcomes}"
    );
    let id = outcomes[0]["document"]["id"].as_str().unwrap();
    let doc = app
        .state
        .ingest()
        .unwrap()
        .wait(super::support::ME, id, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(doc.status, crate::api::documents::DocumentStatus::Failed);
    assert!(
        doc.error
            .as_deref()
            .unwrap_or_default()
            .contains("the limit is 50 million"),
        "{doc:?}"
    );
}

/// A page server on loopback counting its requests; the timetable changes after the
/// first request.
async fn page_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let seen = Arc::clone(&hits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route(
            "/timetable",
            axum::routing::get(move || {
                let time = match seen.load(Ordering::SeqCst) {
                    1 => "twenty past eleven",
                    _ => "a quarter to midnight",
                };
                async move {
                    axum::response::Html(format!(
                        "<html><head><title>Timetable</title></head><body><h1>Night ferries</h1>\
                         <p>The last ferry to the island leaves at {time}.</p></body></html>"
                    ))
                }
            }),
        )
        .layer(axum::middleware::from_fn(
            move |req, next: axum::middleware::Next| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move { next.run(req).await }
            },
        ));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, hits)
}

#[tokio::test]
async fn a_web_page_is_added_by_address_and_a_private_one_is_refused() {
    use std::sync::atomic::Ordering;
    let (base, hits) = page_server().await;
    let url = format!("{base}/timetable");
    // Without the allow setting, loopback is refused before any connection.
    let closed = spawn_app().await;
    let res = post_json(&format!("{}/api/v1/documents", closed.base), &json!({"url": url})).await;
    assert_eq!(res.status(), 200);
    let outcome: Value = res.json().await.unwrap();
    let message = outcome[0]["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("loopback"), "{outcome}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    // Allowed by the admin: fetched, read as HTML, the address kept as its source.
    let open =
        super::support::spawn_app_with(|s| s.rag.fetch_allow_networks = vec!["127.0.0.0/8".into()]).await;
    let res = post_json(&format!("{}/api/v1/documents", open.base), &json!({"url": url})).await;
    let outcome: Value = res.json().await.unwrap();
    let id = outcome[0]["document"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{outcome}"));
    let doc = open
        .state
        .ingest()
        .unwrap()
        .wait(super::support::ME, id, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(doc.source.as_deref(), Some(url.as_str()), "{doc:?}");
    assert_eq!(doc.file_name, "timetable.html");
    let p = best(&open, "When does the last ferry leave at night?").await;
    assert_eq!(p["heading"], "Night ferries", "{p}");
    assert!(p["text"].as_str().unwrap().contains("twenty past eleven"), "{p}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Fetched again after the page changed: version 2, which replaces the first once read.
    let res = post_json(&format!("{}/api/v1/documents", open.base), &json!({"url": url})).await;
    let outcome: Value = res.json().await.unwrap();
    assert_eq!(outcome[0]["document"]["version"], 2, "{outcome}");
    assert_eq!(outcome[0]["document"]["replaces"], id, "{outcome}");
    let v2 = outcome[0]["document"]["id"].as_str().unwrap();
    let ingest = open.state.ingest().unwrap();
    ingest
        .wait(super::support::ME, v2, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let list = ingest.list(super::support::ME).await.unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!((list[0].id.as_str(), list[0].version), (v2, 2));
    let p = best(&open, "When does the last ferry leave at night?").await;
    assert!(
        p["text"].as_str().unwrap().contains("a quarter to midnight"),
        "{p}"
    );
}
