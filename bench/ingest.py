#!/usr/bin/env python3
"""Ingestion of a real corpus end to end, as a user gets it: a fresh Stoa (the release
build, default settings) is sent every file of the evaluation corpus (bench/eval: Debian's
git-doc, sqlite3-doc, postgresql-doc-15 and r-doc-pdf; HTML pages, text and PDF manuals)
over REST, 20 files per upload request, and the documents are polled until each is ready or
failed: passages per second from the first upload to the last document ready.

Meanwhile a chat: the time to the first token of a short question to the embedded model
(/v1/chat/completions, streamed), asked on the idle server first and then every few
seconds while the documents go in.

    bench/ingest.py STOA_BIN RESULTS.md
"""
import importlib.util
import json
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

spec = importlib.util.spec_from_file_location("big_files", Path(__file__).with_name("big-files.py"))
big = importlib.util.module_from_spec(spec)
spec.loader.exec_module(big)

CITIES = ["France", "Italy", "Spain", "Peru", "Kenya", "Japan", "Chile", "Norway", "Egypt", "Canada"]
asked = [0]


def first_token_ms(base):
    # Another question each time: the prompt cache must not answer from the last one.
    n = asked[0] = asked[0] + 1
    question = f"Question {n}: what is the capital of {CITIES[n % len(CITIES)]}? Answer in one sentence."
    body = json.dumps({
        "model": "local", "stream": True, "max_tokens": 8, "temperature": 0,
        "messages": [{"role": "user", "content": question}],
    }).encode()
    req = urllib.request.Request(f"{base}/v1/chat/completions", data=body, method="POST",
                                 headers={"content-type": "application/json"})
    t = time.perf_counter()
    first = None
    with urllib.request.urlopen(req, timeout=600) as res:
        for line in res:
            if first is None and line.startswith(b"data: {") and b'"content"' in line:
                first = (time.perf_counter() - t) * 1000
    return first


def upload_many(base, paths, first):
    boundary = "stoa-bench-boundary"
    body = b""
    for i, p in enumerate(paths):
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{first + i:03}-{p.name}\"\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n").encode() + p.read_bytes() + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    outcomes = big.request("POST", f"{base}/api/v1/documents", body,
                           {"content-type": f"multipart/form-data; boundary={boundary}"})
    refused = [o.get("error") for o in outcomes if not o.get("document")]
    if refused:
        raise RuntimeError(f"refused: {refused}")
    return [o["document"]["id"] for o in outcomes]


def main():
    stoa, out = sys.argv[1], Path(sys.argv[2])
    files = sorted(p for p in big.EVAL.rglob("*") if p.is_file() and not p.name.startswith("."))
    size = sum(p.stat().st_size for p in files)
    server = big.Server(stoa)
    try:
        idle = [first_token_ms(server.base) for _ in range(6)][1:]
        loaded, stop = [], threading.Event()

        def chat():
            while not stop.wait(3):
                loaded.append(first_token_ms(server.base))

        t = time.perf_counter()
        # As a user drops a folder: many files per upload request (20 here).
        ids = []
        for start in range(0, len(files), 20):
            ids += upload_many(server.base, files[start:start + 20], start)
        uploaded = time.perf_counter() - t
        chatter = threading.Thread(target=chat)
        chatter.start()
        pending, chunks, failed = set(ids), 0, []
        while pending:
            for doc_id in list(pending):
                d = big.request("GET", f"{server.base}/api/v1/documents/{doc_id}")
                if d["status"] == "ready":
                    chunks += d["chunk_count"]
                    pending.discard(doc_id)
                elif d["status"] == "failed":
                    failed.append(f"{d.get('name')}: {d.get('error')}")
                    pending.discard(doc_id)
            time.sleep(1)
        took = time.perf_counter() - t
        stop.set()
        chatter.join()
    finally:
        server.stop()
    cpu = open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": \t")
    lines = [
        "# Ingestion of a real corpus (bench/ingest.py)",
        "",
        f"Run on {time.strftime('%Y-%m-%d')}, {len(open('/proc/cpuinfo').read().split('processor')) - 1} cores ({cpu}). "
        "Release build, default settings, SQLite. The evaluation corpus, uploaded over REST 20 files per request.",
        "",
        "| files | MB | passages | failed | uploads sent in (s) | last ready after (s) | passages/s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {len(files)} | {size / 1e6:.1f} | {chunks:,} | {len(failed)} | {uploaded:.1f} | {took:.0f} | {chunks / took:.1f} |",
        "",
        "Time to first token of a short question to the embedded model (ms, median)",
        "",
        "| server | samples | ms |",
        "| --- | ---: | ---: |",
        f"| idle | {len(idle)} | {statistics.median(idle):.0f} |",
        f"| ingesting | {len(loaded)} | {statistics.median(loaded):.0f} ({statistics.median(loaded) / statistics.median(idle):.1f}× idle) |",
    ]
    if failed:
        lines += ["", "Failed:", ""] + [f"- {f}" for f in failed]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
