#!/usr/bin/env python3
"""PDF readers side by side on real manuals, to choose Stoa's by what it reads and how fast:

- Stoa as an upload runs it (`stoa extract pdf`: poppler's pdftotext, page by page);
- Stoa without poppler on its PATH (its fallback, the `pdf-extract` crate in-process);
- poppler's `pdftotext` by hand, MuPDF's `mutool draw -F txt`, and pdfium (Chrome's PDF
  library, through the pypdfium2 wheel from PyPI), one process per file for all.

The corpus is every PDF of Debian's r-doc-pdf (the R manuals of the evaluation corpus),
gnuplot-doc, octave-doc and asymptote-doc (not texlive-latex-recommended-doc, kept aside).
Words found: a file's distinct words (three characters or more) that at least two of the
three independent readers (poppler, MuPDF, pdfium) agree on, and the share of them each
reader gives; the minimum over files shows a file a reader gets wrong. Words hyphenated
at a line end are joined first in every reader's text (poppler joins them itself, MuPDF and
pdfium give the two halves), so that the count measures text read, not line breaking.

    bench/pdf-readers.py STOA_BIN RESULTS.md   (needs mutool: Debian mupdf-tools)
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract import EVAL, run, words  # noqa: E402

WORK = Path.home() / ".cache/stoa/bench/pdf-readers"
PACKAGES = ["gnuplot-doc", "octave-doc", "asymptote-doc"]
VENV = Path.home() / ".cache/stoa/pdf-venv"
PDFIUM = "pypdfium2==5.15.2"

PDFIUM_TEXT = """
import sys, pypdfium2 as pdfium
pdf = pdfium.PdfDocument(sys.argv[1])
out = []
for page in pdf:
    out.append(page.get_textpage().get_text_range())
sys.stdout.write("\\f".join(out))
"""


HYPHENATED = re.compile(r"([a-z])-[ \t]*\n\s*([a-z])")


def joined(text):
    return HYPHENATED.sub(r"\1\2", text or "")


def corpus():
    """The PDFs: the eval corpus' R manuals and the packages' PDFs (fetched once)."""
    WORK.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        target = WORK / package
        if not target.exists():
            with tempfile.TemporaryDirectory() as tmp:
                subprocess.run(["apt-get", "download", package], cwd=tmp, check=True, capture_output=True)
                deb = next(Path(tmp).glob("*.deb"))
                subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
    found = sorted((EVAL / "r-doc-pdf").glob("*.pdf"))
    for package in PACKAGES:
        # Real files only (the TeX tree holds links to the same manuals), and not the
        # one-figure example.
        found += sorted(p for p in (WORK / package).rglob("*.pdf")
                        if p.is_file() and not p.is_symlink() and p.stat().st_size > 10_000)
    return found


def pdfium_python():
    python = VENV / "bin/python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin/pip"), "install", "--quiet", PDFIUM], check=True)
    return str(python)


def stoa_reader(stoa, path_env):
    def read(pdf):
        env = {"PATH": path_env}
        t = time.perf_counter()
        out = subprocess.run([stoa, "extract", "pdf", "1024", "60"], input=pdf.read_bytes(),
                             capture_output=True, env=env, check=False)
        took = time.perf_counter() - t
        reply = json.loads(out.stdout or b"{}")
        if "extracted" not in reply:
            return took, None, reply.get("failed") or out.stderr.decode(errors="replace")[-200:]
        return took, reply["extracted"]["text"], None
    return read


def program_reader(cmd):
    def read(pdf):
        took, out = run([*cmd, str(pdf)] if "{}" not in cmd else [c.replace("{}", str(pdf)) for c in cmd])
        if out.returncode != 0:
            return took, None, out.stderr.decode(errors="replace").strip()[-200:]
        return took, out.stdout.decode(errors="replace"), None
    return read


def version(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return (out.stdout + out.stderr).strip().splitlines()[0]


def main():
    stoa, results = sys.argv[1], Path(sys.argv[2])
    for tool in ("pdftotext", "mutool", "apt-get", "dpkg-deb"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (Debian: poppler-utils, mupdf-tools)")
    pdfs = corpus()
    python = pdfium_python()
    no_poppler = tempfile.mkdtemp(prefix="stoa-no-poppler-")
    readers = {
        "Stoa (poppler)": stoa_reader(stoa, os.environ["PATH"]),
        "Stoa without poppler (pdf-extract)": stoa_reader(stoa, no_poppler),
        "poppler pdftotext": program_reader(["pdftotext", "-q", "-enc", "UTF-8", "{}", "-"]),
        "MuPDF mutool": program_reader(["mutool", "draw", "-q", "-F", "txt", "-o", "-", "{}"]),
        "pdfium (pypdfium2)": program_reader([python, "-c", PDFIUM_TEXT, "{}"]),
    }
    independent = ["poppler pdftotext", "MuPDF mutool", "pdfium (pypdfium2)"]
    texts = {name: {} for name in readers}
    seconds = {name: 0.0 for name in readers}
    slowest = {name: (0.0, "") for name in readers}
    failures = {name: [] for name in readers}
    for pdf in pdfs:
        for name, read in readers.items():
            took, text, error = read(pdf)
            seconds[name] += took
            slowest[name] = max(slowest[name], (took, pdf.name))
            texts[name][pdf] = text
            if text is None:
                failures[name].append(f"{pdf.name}: {error}")
        print(pdf.name, {n: len(texts[n][pdf] or "") for n in readers}, flush=True)
    coverage = {name: [] for name in readers}
    rows = []
    for pdf in pdfs:
        found = [words(joined(texts[n][pdf])) for n in independent]
        agreed = {w for w in set().union(*found) if sum(w in f for f in found) >= 2}
        row = [pdf.name, f"{pdf.stat().st_size / 1e6:.1f}", f"{len(agreed):,}"]
        for name in readers:
            share = len(words(joined(texts[name][pdf])) & agreed) / max(len(agreed), 1)
            coverage[name].append(share)
            row.append("failed" if texts[name][pdf] is None else f"{share:.3f}")
        rows.append(row)
    mb = sum(p.stat().st_size for p in pdfs) / 1e6
    lines = [
        "# PDF readers (bench/pdf-readers.py)",
        "",
        f"Run on {time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} cores. {len(pdfs)} real PDFs "
        f"({mb:.1f} MB): the R manuals (r-doc-pdf) and the PDFs of gnuplot-doc, octave-doc and asymptote-doc. "
        "One process per file for every reader (start-up included). Words found: share of the words that at "
        "least two of poppler, MuPDF and pdfium agree on (per file), mean and minimum over the files.",
        "",
        "| reader | files read | s | MB/s | slowest file | words found (mean) | words found (min) |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for name in readers:
        read = len(pdfs) - len(failures[name])
        lines.append(f"| {name} | {read}/{len(pdfs)} | {seconds[name]:.1f} | {mb / seconds[name]:.2f} | "
                     f"{slowest[name][1]} {slowest[name][0]:.1f} s | "
                     f"{sum(coverage[name]) / len(pdfs):.3f} | {min(coverage[name]):.3f} |")
    lines += [
        "",
        f"Versions: {version(['pdftotext', '-v'])}; {version(['mutool', '-v'])}; {PDFIUM}.",
        "",
        "Per file (words agreed on, then each reader's share):",
        "",
        "| file | MB | words | " + " | ".join(readers) + " |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in readers) + " |",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]
    for name, failed in failures.items():
        for f in failed:
            lines.append(f"\n{name} failed on {f}")
    results.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
