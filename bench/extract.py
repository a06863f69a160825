#!/usr/bin/env python3
"""Extraction throughput per format, Stoa against a reference converter in the same run.

Real documents: the HTML pages, text files and PDF manuals of the retrieval evaluation's
corpus (Debian's git-doc, sqlite3-doc, postgresql-doc-15, r-doc-pdf; bench/eval). Word,
OpenDocument, RTF, EPUB and PowerPoint files are made from the PostgreSQL pages by pandoc (a
third-party writer, so Stoa reads files it did not write). Each file goes through
`stoa extract KIND` as the server runs it for an upload (one sandboxed process per file);
the reference is `pandoc -t plain` (and `pdftotext` for PDF) on the same files. "words
found" is the share of the reference's distinct words that Stoa's text also has (and the
other way round), a check that the speed is not bought by dropping text.

Scanned pages: pages of a real R manual rendered to 200 dpi greyscale images (as a scanner
makes them) and put in a PDF with no text layer; Stoa reads it by OCR (`stoa extract pdf`),
the reference is Tesseract run by hand on the same page images. Both are scored against
the words of the pages' original text layer.

    bench/extract.py STOA_BIN RESULTS.md
    bench/extract.py --ocr STOA_BIN RESULTS.md   (the scanned pages alone)
"""
import os
import re
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

EVAL = Path.home() / ".cache/stoa/eval/docs"
WORK = Path.home() / ".cache/stoa/bench/extract"
WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]{2,}")


def words(text):
    return {w.lower() for w in WORD.findall(text)}


def run(cmd, data=None):
    t = time.perf_counter()
    out = subprocess.run(cmd, input=data, capture_output=True, check=False)
    return time.perf_counter() - t, out


def stoa_text(stoa, kind, path):
    import json

    took, out = run([stoa, "extract", kind, "1024", "60"], path.read_bytes())
    reply = json.loads(out.stdout or b"{}")
    text = reply.get("extracted", {}).get("text", "")
    return took, text, reply.get("failed")


def made_by_pandoc(pages, fmt):
    """One file per page (docx, odt, pptx) or one book of all pages (epub)."""
    out_dir = WORK / fmt
    out_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "epub":
        book = out_dir / "postgresql.epub"
        if not book.exists():
            subprocess.run(["pandoc", "-f", "html", "-t", "epub", "-o", str(book), *map(str, pages)], check=True,
                           capture_output=True)
        return [book]
    files = []
    for page in pages:
        target = out_dir / (page.stem + "." + fmt)
        if not target.exists():
            subprocess.run(["pandoc", "-s", "-f", "html", "-t", fmt, "-o", str(target), str(page)], check=True,
                           capture_output=True)
        files.append(target)
    return files


def measure(stoa, kind, files, reference):
    total = sum(f.stat().st_size for f in files)
    stoa_s = ref_s = 0.0
    found = back = 0.0
    failed = []
    for f in files:
        took, text, failure = stoa_text(stoa, kind, f)
        stoa_s += took
        if failure:
            failed.append(f"{f.name}: {failure}")
        ref_took, ref = run(reference(f))
        ref_s += ref_took
        ref_words, our_words = words(ref.stdout.decode("utf-8", "replace")), words(text)
        found += len(ref_words & our_words) / max(len(ref_words), 1)
        back += len(ref_words & our_words) / max(len(our_words), 1)
    n = len(files)
    return {
        "files": n, "mb": total / 1e6, "stoa_s": stoa_s, "ref_s": ref_s,
        "found": found / n, "back": back / n, "failed": failed,
    }


SCAN_DPI = 200


def pgm(data):
    """(width, height, pixels) of a binary greyscale PGM (P5, maxval 255) from pdftoppm."""
    fields, pos = [], 2
    while len(fields) < 3:
        while data[pos:pos + 1].isspace():
            pos += 1
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(int(data[pos:end]))
        pos = end
    return fields[0], fields[1], data[pos + 1:]


def image_only_pdf(pages):
    """A PDF whose pages are greyscale images [(width, height, pixels)] at SCAN_DPI."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", None]
    kids = []
    for w, h, pixels in pages:
        n = len(objects) + 1
        kids.append(f"{n} 0 R")
        pw, ph = w * 72 / SCAN_DPI, h * 72 / SCAN_DPI
        content = f"q {pw:.2f} 0 0 {ph:.2f} 0 0 cm /Im0 Do Q".encode()
        image = zlib.compress(pixels, 6)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {pw:.2f} {ph:.2f}] "
            f"/Resources << /XObject << /Im0 {n + 1} 0 R >> >> /Contents {n + 2} 0 R >>".encode())
        objects.append(
            f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceGray "
            f"/BitsPerComponent 8 /Filter /FlateDecode /Length {len(image)} >>\nstream\n".encode()
            + image + b"\nendstream")
        objects.append(f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def scanned(stoa, manual, first, last):
    """OCR of pages first..last of `manual` as scans: Stoa against Tesseract by hand."""
    out_dir = WORK / "scans"
    out_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for page in range(first, last + 1):
        data = subprocess.run(["pdftoppm", "-q", "-r", str(SCAN_DPI), "-gray", "-f", str(page), "-l", str(page),
                               str(manual)], capture_output=True, check=True).stdout
        images.append(pgm(data))
        (out_dir / f"page-{page}.pgm").write_bytes(data)
    scan = out_dir / "scanned.pdf"
    scan.write_bytes(image_only_pdf(images))
    layer = subprocess.run(["pdftotext", "-q", "-f", str(first), "-l", str(last), str(manual), "-"],
                           capture_output=True, check=True).stdout.decode("utf-8", "replace")
    truth = words(layer)
    stoa_s, text, failure = stoa_text(stoa, "pdf", scan)
    ref_s, ref_text = 0.0, ""
    for page in range(first, last + 1):
        took, out = run(["tesseract", str(out_dir / f"page-{page}.pgm"), "stdout", "-l", "eng"])
        ref_s += took
        ref_text += out.stdout.decode("utf-8", "replace")
    share = lambda text: len(truth & words(text)) / max(len(truth), 1)
    return {
        "pages": len(images), "mb": scan.stat().st_size / 1e6, "stoa_s": stoa_s, "ref_s": ref_s,
        "found": share(text), "ref_found": share(ref_text), "failed": failure,
    }


def ocr_report(stoa):
    """The scanned-pages section: its lines, and a failure if Stoa failed."""
    manual = EVAL / "r-doc-pdf" / "R-intro.pdf"
    ocr = scanned(stoa, manual, 10, 29)
    build = "debug" if "/debug/" in stoa else "release"
    lines = [
        f"## Scanned pages (OCR)",
        "",
        f"Run on {time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} cores, Stoa's {build} build (the "
        f"work is poppler's and Tesseract's, which are the same programs in either). Pages 10–29 of {manual.name} "
        f"rendered at {SCAN_DPI} dpi (greyscale) into a PDF with no text layer ({ocr['mb']:.1f} MB). Stoa: "
        "`stoa extract pdf` (poppler renders each page, Tesseract reads it, one thread); reference: "
        "`tesseract PAGE stdout -l eng` on the same page images (its own threads). Words found: share of the "
        "distinct words of those pages' original text layer (pdftotext) in the OCR text.",
        "",
        "| | pages | s | pages/s | words found |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| Stoa | {ocr['pages']} | {ocr['stoa_s']:.1f} | {ocr['pages'] / ocr['stoa_s']:.2f} | {ocr['found']:.3f} |",
        f"| Tesseract by hand | {ocr['pages']} | {ocr['ref_s']:.1f} | {ocr['pages'] / ocr['ref_s']:.2f} | "
        f"{ocr['ref_found']:.3f} |",
    ]
    return lines, (f"scanned.pdf: {ocr['failed']}" if ocr["failed"] else None)


def main():
    if sys.argv[1] == "--ocr":
        stoa, results = sys.argv[2], Path(sys.argv[3])
        lines, failure = ocr_report(stoa)
        lines[0] = "# Scanned pages read by OCR (bench/extract.py --ocr)"
        if failure:
            lines += ["", f"Failed in Stoa: {failure}"]
        results.write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        return
    stoa, results = sys.argv[1], Path(sys.argv[2])
    for tool in ("pandoc", "pdftotext", "pdftoppm", "tesseract"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (make bench-extract installs it)")
    pg = sorted((EVAL / "postgresql-doc-15").glob("*.html"))
    html = sorted(EVAL.glob("*/*.html"))
    text = sorted(EVAL.glob("*/*.txt"))
    pdf = sorted(EVAL.glob("*/*.pdf"))
    plain = lambda fmt: lambda f: ["pandoc", "-f", fmt, "-t", "plain", "--wrap=none", str(f)]
    rows = [
        ("HTML pages", "html", html, plain("html")),
        ("text (reST, AsciiDoc)", "text", text, lambda f: ["cat", str(f)]),
        ("PDF manuals", "pdf", pdf, lambda f: ["pdftotext", "-q", str(f), "-"]),
        ("Word (.docx, by pandoc)", "docx", made_by_pandoc(pg, "docx"), plain("docx")),
        ("OpenDocument (.odt, by pandoc)", "odt", made_by_pandoc(pg, "odt"), plain("odt")),
        ("RTF (.rtf, by pandoc)", "rtf", made_by_pandoc(pg, "rtf"), plain("rtf")),
        ("EPUB (one book, by pandoc)", "epub", made_by_pandoc(pg, "epub"), plain("epub")),
        ("PowerPoint (.pptx, by pandoc)", "pptx", made_by_pandoc(pg[:20], "pptx"), lambda f: ["cat", "/dev/null"]),
    ]
    lines = [
        "# Extraction throughput (bench/extract.py)",
        "",
        f"Run on {time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} cores. Stoa: `stoa extract` per file "
        "(the sandboxed process an upload runs, start-up included); reference: `pandoc -t plain` "
        "(`pdftotext` for PDF, the file itself for text). Words found: share of the reference's distinct "
        "words in Stoa's text / of Stoa's words in the reference's.",
        "",
        "| format | files | MB | Stoa s | Stoa MB/s | reference s | reference MB/s | words found |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    failures = []
    for label, kind, files, reference in rows:
        r = measure(stoa, kind, files, reference)
        ref = "–" if kind == "pptx" else f"{r['ref_s']:.1f}"
        ref_rate = "–" if kind == "pptx" else f"{r['mb'] / r['ref_s']:.2f}"
        found = "–" if kind == "pptx" else f"{r['found']:.3f} / {r['back']:.3f}"
        lines.append(
            f"| {label} | {r['files']} | {r['mb']:.1f} | {r['stoa_s']:.1f} | {r['mb'] / r['stoa_s']:.2f} | "
            f"{ref} | {ref_rate} | {found} |"
        )
        failures += r["failed"]
        print(lines[-1], flush=True)
    lines += [
        "",
        "pandoc 2.17 has no plain-text reader for .pptx, so that row has no reference. Its .odt reader "
        "drops most of what its own .odt writer wrote (42 words of backup-dump.odt, where Stoa reads 1,557 "
        "with every heading and paragraph), so the second figure of that row measures pandoc, not Stoa.",
    ]
    ocr_lines, ocr_failure = ocr_report(stoa)
    lines += ["", *ocr_lines]
    if ocr_failure:
        failures.append(ocr_failure)
    if failures:
        lines += ["", "Failed in Stoa:", *[f"- {f}" for f in failures]]
    results.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
