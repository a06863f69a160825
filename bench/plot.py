"""PNG plots of the committed benchmark results (make plots): reads bench/results/*.json."""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

results = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results")
COLORS = {"Stoa": "#2a6f97", "FastAPI": "#c8553d", "upstream (direct)": "#8d99ae"}


def gateway():
    path = results / "gateway.json"
    if not path.exists():
        return
    data = json.loads(path.read_text())
    rows = data["rows"]
    levels = []
    for r in rows:
        key = (r["concurrency"], r["paced"])
        if key not in levels:
            levels.append(key)
    labels = [f"{c}" + ("" if paced else "\nunpaced") for c, paced in levels]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    width = 0.27
    targets = ["upstream (direct)", "Stoa", "FastAPI"]
    panels = [
        ("streams_per_sec", "completed streams/s", targets),
        ("added_ttft_p99_ms", "added time to first token, p99 (ms)", targets[1:]),
        ("peak_rss_kib", "peak RSS (MiB)", targets[1:]),
    ]
    for ax, (key, title, names) in zip(axes, panels):
        for i, name in enumerate(names):
            values = []
            for level in levels:
                row = next(r for r in rows if (r["concurrency"], r["paced"]) == level and r["target"] == name)
                v = row.get(key)
                v = 0 if v is None else v
                values.append(v / 1024 if key == "peak_rss_kib" else v)
            xs = [x + (i - (len(names) - 1) / 2) * width for x in range(len(levels))]
            ax.bar(xs, values, width, label=name, color=COLORS[name])
        ax.set_xticks(range(len(levels)), labels)
        ax.set_xlabel("concurrent streams")
        ax.set_title(title)
        if key == "added_ttft_p99_ms":
            ax.set_yscale("symlog", linthresh=1)
    axes[0].legend()
    fig.suptitle(f"Gateway overhead: Stoa vs FastAPI relaying the same scripted upstream ({data['cores']} cores)")
    fig.tight_layout()
    fig.savefig(results / "gateway.png", dpi=100)


def embeddings():
    path = results / "embeddings.json"
    if not path.exists():
        return
    data = json.loads(path.read_text())
    # What Stoa runs (F16 matrices); the F32 rows are a comparison.
    rows = [r for r in data["rows"] if r["engine"].endswith("(Stoa)")] or data["rows"]
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r["stoa_per_sec"] for r in rows], 0.4, label="Stoa (llama.cpp, F16)", color=COLORS["Stoa"])
    ax.bar([x + 0.2 for x in xs], [r["sentence_transformers_per_sec"] for r in rows], 0.4,
           label="sentence-transformers (torch)", color=COLORS["FastAPI"])
    ax.set_xticks(list(xs), [r["set"] for r in rows])
    ax.set_ylabel("texts/s")
    ax.set_title(f"all-MiniLM-L6-v2 embeddings on {data['cores']} cores")
    ax.legend()
    fig.tight_layout()
    fig.savefig(results / "embeddings.png", dpi=100)


gateway()
embeddings()
