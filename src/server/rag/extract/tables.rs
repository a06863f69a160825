//! Spreadsheets (`.xlsx`, `.xls`, `.ods` through calamine) and CSV/TSV files as tables:
//! each sheet a section, its rows in blocks of about one chunk, each block its own section
//! ("Sales > Rows 2–21") that starts with the header row, so every chunk of a table carries
//! the names of its columns.

use std::io::Cursor;

use calamine::{Data, Ods, Reader, Xls, Xlsx};

use super::{
    Extracted,
    container::Container,
    office::{Writer, table_line},
};

/// Characters of rows per block: about 200 tokens of table text.
const BLOCK_CHARS: usize = 700;
/// Most cells read from one file.
const MAX_CELLS: usize = 5_000_000;

/// Writes `rows` (the first one the header) as blocks under `level` headings.
fn blocks(w: &mut Writer, rows: &[Vec<String>], level: usize) {
    let mut rows = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.iter().any(|c| !c.trim().is_empty()));
    let Some((_, header)) = rows.next() else {
        return;
    };
    let header_line = table_line(header);
    let mut block: Vec<(usize, String)> = Vec::new();
    let mut size = 0;
    let flush = |w: &mut Writer, block: &mut Vec<(usize, String)>| {
        if let (Some((first, _)), Some((last, _))) = (block.first(), block.last()) {
            w.heading(level, &format!("Rows {}–{}", first + 1, last + 1));
            let mut lines = vec![vec![header_line.clone()]];
            lines.extend(block.iter().map(|(_, l)| vec![l.clone()]));
            w.rows(&lines);
        }
        block.clear();
    };
    for (i, row) in rows {
        let line = table_line(row);
        if size + line.len() > BLOCK_CHARS && !block.is_empty() {
            flush(w, &mut block);
            size = 0;
        }
        size += line.len() + header_line.len() / 4;
        block.push((i, line));
    }
    flush(w, &mut block);
}

fn cell(data: &Data) -> String {
    match data {
        Data::Empty => String::new(),
        Data::Error(_) => String::new(),
        other => other.to_string(),
    }
}

/// Which spreadsheet format a workbook is in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Book {
    Xlsx,
    Xls,
    Ods,
}

/// A workbook, each sheet a section; ZIP containers (`.xlsx`, `.ods`) are checked for
/// bombs before the spreadsheet reader opens them.
pub fn workbook(bytes: &[u8], book: Book) -> Result<Extracted, String> {
    if book != Book::Xls {
        Container::open(bytes, "workbook")?;
    }
    match book {
        Book::Xlsx => sheets::<Xlsx<_>>(bytes),
        Book::Xls => sheets::<Xls<_>>(bytes),
        Book::Ods => sheets::<Ods<_>>(bytes),
    }
}

fn sheets<'a, R>(bytes: &'a [u8]) -> Result<Extracted, String>
where
    R: Reader<Cursor<&'a [u8]>>,
    R::Error: std::fmt::Display,
{
    let mut book = R::new(Cursor::new(bytes)).map_err(|e: R::Error| {
        let e = e.to_string();
        let lower = e.to_ascii_lowercase();
        if lower.contains("password") || lower.contains("encrypt") {
            "the workbook is encrypted (password-protected); save it without a password".to_owned()
        } else {
            format!("the workbook could not be read: {e}")
        }
    })?;
    let mut w = Writer::default();
    let mut cells = 0usize;
    let names: Vec<String> = book.sheet_names();
    for name in names {
        let range = book
            .worksheet_range(&name)
            .map_err(|e| format!("sheet {name} could not be read: {e}"))?;
        let (height, width) = range.get_size();
        cells = cells.saturating_add(height.saturating_mul(width));
        if cells > MAX_CELLS {
            return Err(format!(
                "the workbook has more than {MAX_CELLS} cells (sheet {name} spans {height} × {width})"
            ));
        }
        let rows: Vec<Vec<String>> = range.rows().map(|r| r.iter().map(cell).collect()).collect();
        if rows.iter().all(|r| r.iter().all(|c| c.trim().is_empty())) {
            continue;
        }
        w.heading(1, &name);
        blocks(&mut w, &rows, 2);
    }
    Ok(Extracted {
        text: w.out,
        title: None,
    })
}

/// CSV or TSV: the delimiter is the one of `,`, `;`, tab and `|` most frequent in the
/// first line; quoted fields as in RFC 4180; ragged rows accepted.
pub fn csv(text: &str) -> Result<Extracted, String> {
    let first = text.lines().next().unwrap_or_default();
    let delimiter = [b',', b';', b'\t', b'|']
        .into_iter()
        .max_by_key(|d| first.bytes().filter(|b| b == d).count())
        .unwrap_or(b',');
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    let mut cells = 0usize;
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("row {} could not be read: {e}", i + 1))?;
        cells += record.len();
        if cells > MAX_CELLS {
            return Err(format!("the file has more than {MAX_CELLS} cells"));
        }
        rows.push(record.iter().map(str::to_owned).collect());
    }
    let mut w = Writer::default();
    blocks(&mut w, &rows, 1);
    Ok(Extracted {
        text: w.out,
        title: None,
    })
}

#[cfg(test)]
pub mod tests {
    use super::super::{Kind, container::tests::archive, extract};

    #[test]
    fn every_block_of_a_table_starts_with_its_header() {
        let mut csv_text = String::from("city;country;population\n");
        for i in 0..100 {
            csv_text.push_str(&format!("City number {i};Country {i};{}\n", i * 1000));
        }
        csv_text.push_str("\"Quoted; city\";Land;7\n");
        let e = extract(Kind::Csv, csv_text.as_bytes()).unwrap();
        let sections: Vec<&str> = e.text.split("\n# ").collect();
        assert!(sections.len() > 3, "{}", e.text);
        for s in &sections {
            let mut lines = s.trim_start_matches("# ").lines();
            assert!(lines.next().unwrap().starts_with("Rows "), "{s}");
            assert_eq!(lines.nth(1), Some("city | country | population"), "{s}");
        }
        assert!(e.text.contains("Quoted; city | Land | 7"), "{}", e.text);
    }

    /// A minimal `.xlsx` with shared strings, as Excel writes them.
    pub fn xlsx_fixture() -> Vec<u8> {
        let ns = r#"xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships""#;
        let workbook = format!(
            r#"<workbook {ns}><sheets><sheet name="Budget" sheetId="1" r:id="rId1"/></sheets></workbook>"#
        );
        let rels = r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#;
        let strings = format!(
            r#"<sst {ns} count="4" uniqueCount="4"><si><t>Team</t></si><si><t>Quarterly budget</t></si><si><t>Lighthouse crew</t></si><si><t>Archive</t></si></sst>"#
        );
        let sheet = format!(
            r#"<worksheet {ns}><sheetData>
            <row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>
            <row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2"><v>48000</v></c></row>
            <row r="3"><c r="A3" t="s"><v>3</v></c><c r="B3"><v>1250.5</v></c></row>
            </sheetData></worksheet>"#
        );
        let types = r#"<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>"#;
        let root_rels = r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
        archive(&[
            ("[Content_Types].xml", types.as_bytes()),
            ("_rels/.rels", root_rels.as_bytes()),
            ("xl/workbook.xml", workbook.as_bytes()),
            ("xl/_rels/workbook.xml.rels", rels.as_bytes()),
            ("xl/sharedStrings.xml", strings.as_bytes()),
            ("xl/worksheets/sheet1.xml", sheet.as_bytes()),
        ])
    }

    #[test]
    fn a_workbook_sheet_is_a_section_with_its_header_row() {
        let e = extract(Kind::Xlsx, &xlsx_fixture()).unwrap();
        assert_eq!(
            e.text,
            "# Budget\n\n## Rows 2–3\n\nTeam | Quarterly budget\nLighthouse crew | 48000\nArchive | 1250.5"
        );
    }
}
