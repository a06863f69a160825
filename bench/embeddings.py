"""sentence-transformers side of the embeddings benchmark (bench/embeddings.rs runs it).

Usage: embeddings.py MODEL_DIR TEXTS_JSON OUT_JSON RUNS
TEXTS_JSON is {"sets": {"name": [text, ...]}}; for each set: one warm-up pass, then RUNS timed
passes of `encode` (batch 32, normalised, as Stoa embeds), and the first vectors for a check
that both sides compute the same thing.
"""

import json
import os
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

model_dir, texts_path, out_path, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.set_num_threads(os.cpu_count() or 1)
model = SentenceTransformer(model_dir, device="cpu")
sets = json.load(open(texts_path))["sets"]
result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "sets": {}}
with torch.inference_mode():
    for name, texts in sets.items():
        model.encode(texts[:64], batch_size=32, normalize_embeddings=True)
        seconds = []
        for _ in range(runs):
            t = time.perf_counter()
            vectors = model.encode(texts, batch_size=32, normalize_embeddings=True)
            seconds.append(time.perf_counter() - t)
        result["sets"][name] = {"seconds": seconds, "first": vectors[:8].tolist()}
json.dump(result, open(out_path, "w"))
