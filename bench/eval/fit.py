"""Fits the weights of Stoa's abstention model (src/server/rag/select.rs) on the evaluation.

Usage: python3 bench/eval/fit.py OUTCOMES.jsonl [SETUP]
  OUTCOMES.jsonl is what `stoa eval-rag --dump` writes; SETUP names the set-up whose
  evidence is used (default: the pipeline with default settings).

The model is a logistic regression of "the documents answer the question" (every kind but
unanswerable) on the features `select::features` computes, with a small L2 penalty, fitted
by gradient descent (no dependencies beyond Python). It prints the weights to paste into
select.rs, then, for thresholds on the probability, the share of unanswerable questions
declined and of answerable ones wrongly declined: on the whole set (the weights' own data)
and by 5-fold cross-validation (each fold scored by weights fitted on the other four),
which is the honest figure.
"""

import json
import math
import random
import sys

FEATURES = ["best_cosine", "cosine_gap", "coverage_three", "missing_rare"]


def features(e):
    return [
        e["best_cosine"],
        e["cosine_gap"],
        e["coverage_three"],
        min(e["missing_rare"], 2) / 2.0,
    ]


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))


def fit(xs, ys, l2=0.001, steps=20000, rate=2.0):
    n, d = len(xs), len(xs[0])
    w = [0.0] * (d + 1)
    # Each class weighs the same: the set has fewer unanswerable questions.
    pos = sum(ys)
    weight = [0.5 / pos if y else 0.5 / (n - pos) for y in ys]
    for _ in range(steps):
        grad = [0.0] * (d + 1)
        for x, y, c in zip(xs, ys, weight):
            p = sigmoid(w[0] + sum(wi * xi for wi, xi in zip(w[1:], x)))
            g = (p - y) * c
            grad[0] += g
            for i, xi in enumerate(x):
                grad[i + 1] += g * xi
        for i in range(1, d + 1):
            grad[i] += l2 * w[i]
        w = [wi - rate * gi for wi, gi in zip(w, grad)]
    return w


def prob(w, x):
    return sigmoid(w[0] + sum(wi * xi for wi, xi in zip(w[1:], x)))


def rates(ps, ys, t):
    unans = [p for p, y in zip(ps, ys) if not y]
    ans = [p for p, y in zip(ps, ys) if y]
    declined = sum(p < t for p in unans) / max(len(unans), 1)
    wrongly = sum(p < t for p in ans) / max(len(ans), 1)
    return declined, wrongly


def main():
    path = sys.argv[1]
    setup = sys.argv[2] if len(sys.argv) > 2 else "pipeline (default settings)"
    rows = [json.loads(line) for line in open(path) if line.strip()]
    rows = [r for r in rows if r["setup"].strip() == setup and r.get("evidence")]
    xs = [features(r["evidence"]) for r in rows]
    ys = [0 if r["kind"] == "unanswerable" else 1 for r in rows]
    print(f"{len(rows)} questions ({len(ys) - sum(ys)} unanswerable) from set-up '{setup}'")
    w = fit(xs, ys)
    print("WEIGHTS (intercept, " + ", ".join(FEATURES) + "):")
    print("[" + ", ".join(f"{v:.3f}" for v in w) + "]")

    random.seed(7)
    order = list(range(len(rows)))
    random.shuffle(order)
    folds = [order[i::5] for i in range(5)]
    cv = [0.0] * len(rows)
    for fold in folds:
        held = set(fold)
        wf = fit([x for i, x in enumerate(xs) if i not in held], [y for i, y in enumerate(ys) if i not in held])
        for i in fold:
            cv[i] = prob(wf, xs[i])
    own = [prob(w, x) for x in xs]
    print("\nthreshold | declined unanswerable (fit / cross-validated) | wrongly declined answerable (fit / cv)")
    for t in [0.2, 0.25, 0.275, 0.3, 0.325, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6]:
        d1, w1 = rates(own, ys, t)
        d2, w2 = rates(cv, ys, t)
        print(f"{t:.2f} | {d1:.2f} / {d2:.2f} | {w1:.2f} / {w2:.2f}")


if __name__ == "__main__":
    main()
