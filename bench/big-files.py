#!/usr/bin/env python3
"""Big files through the whole ingestion (upload, read, chunk, embed, ready) as a user
sees it, on a fresh Stoa started from the build given:

- a 360-page PDF: the five R manuals of the evaluation corpus (Debian's r-doc-pdf) joined
  into one by poppler's pdfunite;
- a spreadsheet of about 50 MB made here: ledger rows (date, id, amount, quantity, region)
  whose descriptions are sentences of the corpus' own HTML pages, written as .xlsx.

Each is uploaded over REST (default settings: files up to 64 MB) and its status polled
every 0.25 s: the table gives the time to ready (or the failure and its reason), the
passages, the progress states a user saw, and the peak memory of the server and of the
extraction process. The spreadsheet is watched for WATCH_S, then cancelled; each server is
stopped with SIGTERM and the time it takes to stop is noted. Then a cancel: the PDF uploaded again under another name is
cancelled once it is being embedded; the time until the API says so and until the
worker has taken the next file.

    bench/big-files.py STOA_BIN RESULTS.md
"""
import html
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

EVAL = Path.home() / ".cache/stoa/eval/docs"
WORK = Path.home() / ".cache/stoa/bench/big-files"
SHEET_MB = 50
WATCH_S = 150


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def request(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=600) as res:
        return json.loads(res.read() or b"null")


def upload(base, name, data):
    boundary = "stoa-bench-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    outcomes = request("POST", f"{base}/api/v1/documents", body,
                       {"content-type": f"multipart/form-data; boundary={boundary}"})
    outcome = outcomes[0]
    if not outcome.get("document"):
        raise RuntimeError(f"{name} refused: {outcome.get('error')}")
    return outcome["document"]["id"]


def descendants(pid):
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    kids = [int(k) for k in f.read().split()]
                found += kids
                todo += kids
        except OSError:
            pass
    return found


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Memory(threading.Thread):
    """Peak resident memory of the server and of its children, sampled every 0.1 s."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.server, self.children, self.running = pid, 0.0, 0.0, True

    def run(self):
        while self.running:
            self.server = max(self.server, rss_mb(self.pid))
            self.children = max(self.children, sum(rss_mb(k) for k in descendants(self.pid)))
            time.sleep(0.1)


def follow(base, doc_id, timeout=3600):
    """Polls a document until it is ready or failed: (seconds, final view, states seen)."""
    start, states = time.perf_counter(), []
    while True:
        d = request("GET", f"{base}/api/v1/documents/{doc_id}")
        state = d["status"] + (f" {d['progress_done']}/{d['progress_total']}" if d.get("progress_total") else "")
        if not states or states[-1] != state:
            states.append(state)
        if d["status"] in ("ready", "failed"):
            return time.perf_counter() - start, d, states
        if time.perf_counter() - start > timeout:
            return time.perf_counter() - start, d, states
        time.sleep(0.25)


def joined_manuals():
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / "r-manuals.pdf"
    if not out.exists():
        manuals = sorted((EVAL / "r-doc-pdf").glob("*.pdf"))
        subprocess.run(["pdfunite", *map(str, manuals), str(out)], check=True)
    pages = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True, check=True).stdout
    return out, int(re.search(r"Pages:\s+(\d+)", pages).group(1))


def sentences():
    tag = re.compile(r"<[^>]+>")
    found = []
    for page in sorted((EVAL / "postgresql-doc-15").glob("*.html"))[:200]:
        text = html.unescape(tag.sub(" ", page.read_text(errors="replace")))
        found += [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if 40 < len(s) < 160]
    return found


def ledger_xlsx():
    """About SHEET_MB MB of .xlsx: one sheet of ledger rows with inline strings."""
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / "ledger.xlsx"
    if out.exists():
        return out, int(out.with_suffix(".rows").read_text())
    rng = random.Random(7)
    said = sentences()
    regions = ["North", "South", "East", "West", "Harbour", "Uplands"]
    cell = lambda ref, text: f'<c r="{ref}" t="inlineStr"><is><t>{html.escape(text)}</t></is></c>'
    num = lambda ref, n: f'<c r="{ref}"><v>{n}</v></c>'
    rows = 0
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml",
                   '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                   '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                   '<Default Extension="xml" ContentType="application/xml"/>'
                   '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
                   '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                   '</Types>')
        z.writestr("_rels/.rels",
                   '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                   '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
                   '</Relationships>')
        z.writestr("xl/workbook.xml",
                   '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
                   'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>'
                   '<sheet name="Ledger" sheetId="1" r:id="rId1"/></sheets></workbook>')
        z.writestr("xl/_rels/workbook.xml.rels",
                   '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                   '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
                   '</Relationships>')
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
            header = ["Date", "Entry", "Description", "Amount", "Quantity", "Region"]
            sheet.write(("<row r=\"1\">" + "".join(cell(f"{c}1", h) for c, h in zip("ABCDEF", header)) + "</row>").encode())
            r = 1
            while True:
                batch = []
                for _ in range(2000):
                    r += 1
                    batch.append(
                        f'<row r="{r}">' + cell(f"A{r}", f"2026-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}")
                        + cell(f"B{r}", f"E{r:08}") + cell(f"C{r}", rng.choice(said))
                        + num(f"D{r}", round(rng.uniform(1, 5000), 2)) + num(f"E{r}", rng.randint(1, 400))
                        + cell(f"F{r}", rng.choice(regions)) + "</row>")
                sheet.write("".join(batch).encode())
                # The compressed size is only known at the end: estimated from the ratio so far.
                if r % 20_000 < 2000 and out.stat().st_size > SHEET_MB * 1_000_000:
                    break
            sheet.write(b"</sheetData></worksheet>")
            rows = r - 1
    out.with_suffix(".rows").write_text(str(rows))
    return out, rows


class Server:
    def __init__(self, stoa):
        self.dir = tempfile.mkdtemp(prefix="stoa-big-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "LEPTOS_OUTPUT_NAME": "stoa",
            "LEPTOS_SITE_ADDR": f"127.0.0.1:{self.port}",
            "LEPTOS_SITE_ROOT": str(Path(__file__).resolve().parent.parent / "target/site"),
            "STOA_SERVER__DATA_DIR": self.dir,
            "STOA_LOG__FILTER": "warn",
        }
        self.proc = subprocess.Popen([stoa], env=env)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                request("GET", f"{self.base}/api/v1/documents")
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("stoa did not start")

    def stop(self):
        """SIGTERM; SIGKILL when it has not stopped 30 s later. Returns the seconds it took
        to stop, or None when it had to be killed."""
        t = time.perf_counter()
        self.proc.terminate()
        try:
            self.proc.wait(30)
            stopped = time.perf_counter() - t
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            stopped = None
        shutil.rmtree(self.dir, ignore_errors=True)
        return stopped


def ingest(server, name, path, label, detail, limit):
    memory = Memory(server.proc.pid)
    memory.start()
    data = path.read_bytes()
    t = time.perf_counter()
    doc_id = upload(server.base, name, data)
    uploaded = time.perf_counter() - t
    took, d, states = follow(server.base, doc_id, limit)
    memory.running = False
    memory.join()
    if d["status"] == "ready":
        outcome = f"ready, {d['chunk_count']:,} passages"
    elif d["status"] == "failed":
        outcome = f"failed: {d.get('error')}"
    else:
        done, total = d.get("progress_done", 0), d.get("progress_total", 0)
        outcome = f"stopped watching after {limit} s: {d['status']} {done:,}/{total:,}"
    seen = ", ".join(states[:3] + (["…"] if len(states) > 4 else []) + states[-1:]) if len(states) > 3 else ", ".join(states)
    row = (f"| {label} | {detail} | {len(data) / 1e6:.1f} | {uploaded:.1f} | {took:.0f} | {outcome} | "
           f"{len(states)} | {memory.server:.0f} | {memory.children:.0f} |")
    print(row, "\n  states:", seen, flush=True)
    if d["status"] not in ("ready", "failed"):
        t = time.perf_counter()
        c = request("POST", f"{server.base}/api/v1/documents/{doc_id}/cancel", b"")
        seen += f"; cancelled then: `{c['status']}` in the answer ({(time.perf_counter() - t) * 1000:.0f} ms)"
    return row, seen


def cancel(server, path):
    """The PDF again under another name, cancelled once it is embedded; then a small file."""
    doc_id = upload(server.base, "again.pdf", path.read_bytes())
    while True:
        d = request("GET", f"{server.base}/api/v1/documents/{doc_id}")
        if d["status"] == "embedding" or d["status"] in ("ready", "failed"):
            break
        time.sleep(0.05)
    t = time.perf_counter()
    d = request("POST", f"{server.base}/api/v1/documents/{doc_id}/cancel", b"")
    answered = time.perf_counter() - t
    note = upload(server.base, "note.txt", b"The attic key hangs in the hall.")
    took, n, _ = follow(server.base, note)
    return d["status"], d.get("error"), answered, time.perf_counter() - t, n["status"]


def main():
    stoa, results = sys.argv[1], Path(sys.argv[2])
    for tool in ("pdfunite", "pdfinfo"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (Debian: poppler-utils)")
    pdf, pages = joined_manuals()
    sheet, rows = ledger_xlsx()
    build = "debug" if "/debug/" in stoa else "release"
    lines = [
        "# Big files (bench/big-files.py)",
        "",
        f"Run on {time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} cores, Stoa's {build} build with "
        "default settings (files up to 64 MB). Each file is uploaded to a fresh server over REST and "
        "followed until it is ready; memory is the peak resident size of the server and of the extraction "
        "process (with the programs it runs), sampled every 0.1 s.",
        "",
        "| file | what | MB | upload s | to ready s | outcome | progress states seen | server MB | reader MB |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    notes = []
    # The spreadsheet is watched for WATCH_S only: embedding all its passages on 2 cores
    # takes hours (the table says how far it got).
    for name, path, label, detail, limit in [
        ("r-manuals.pdf", pdf, "R manuals joined (real)", f"{pages} pages", 3600),
        ("ledger.xlsx", sheet, "ledger spreadsheet (made)", f"{rows:,} rows × 6", WATCH_S),
    ]:
        server = Server(stoa)
        try:
            row, seen = ingest(server, name, path, label, detail, limit)
        finally:
            stopped = server.stop()
        lines.append(row)
        notes.append(f"- {label}: {seen}; " + (f"the server stopped {stopped:.1f} s after SIGTERM" if stopped is not None
                                                else "the server did not stop within 30 s of SIGTERM"))
    server = Server(stoa)
    try:
        status, error, answered, next_ready, next_status = cancel(server, pdf)
    finally:
        server.stop()
    lines += [
        "",
        "Progress as the API reported it (first, last):",
        *notes,
        "",
        f"Cancel: the {pages}-page PDF, cancelled while it was embedded, was `{status}` (\"{error}\") in the "
        f"answer to the cancel request ({answered * 1000:.0f} ms); a small file uploaded right after was "
        f"{next_status} {next_ready:.1f} s after the cancel.",
    ]
    results.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
