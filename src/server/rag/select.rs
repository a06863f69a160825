//! Selection and abstention: whether the documents cover the question at all, and which
//! passages earned a place in the answer.
//!
//! The decision comes from [`Evidence`], several signals that each say something the raw
//! similarity does not: MiniLM gives unrelated passages of the same field cosines around
//! 0.4, so a floor on the best cosine alone declines nothing (issue 19 measured 0 of 10).
//! The signals are combined by a logistic model whose weights were fitted on the
//! evaluation set (`bench/eval`, `stoa eval-rag --dump`; see `bench/README.md`), so the
//! result, [`confidence`], reads as the probability that the documents answer the
//! question, and `rag.min_confidence` is a threshold on that probability.

use serde::Serialize;

use super::rerank::sigmoid;

/// What the candidates say about whether the documents cover the question.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Evidence {
    /// The best cosine similarity of any candidate to the question.
    pub best_cosine: f32,
    /// Best cosine minus the mean of the candidates' cosines: how much the best stands out.
    pub cosine_gap: f32,
    /// Share of the question's search terms (stemmed) found in the first passage.
    pub coverage_first: f32,
    /// Share of the question's search terms found in any of the first three passages.
    pub coverage_three: f32,
    /// Keyword search and vector search agree: the document of the best vector match is
    /// among the first documents keyword search found.
    pub agree: bool,
    /// Candidates keyword search found (0 when no search term occurs in the documents).
    pub keyword_hits: u32,
    /// Share of the question's search terms found in none of the candidates: a word the
    /// documents do not use (a tool, a version, a feature they do not have) would have
    /// brought up a passage that has it, being rare, if they had one.
    pub missing: f32,
    /// How many of the question's search terms are found in none of the candidates.
    pub missing_terms: u32,
    /// How many of those are rare words (see `Retriever::rare_missing`).
    pub missing_rare: u32,
    /// The re-ranker's best score (0–1), when a re-ranker ran.
    pub rerank_best: Option<f32>,
}

/// Weights of the logistic model, in the order of [`features`] (intercept first), fitted
/// by `bench/eval/fit.py` on the evaluation's 155 questions (31 unanswerable): declining
/// below 0.275 (the default `rag.min_confidence`) declined 48 % of the unanswerable ones
/// and 3 % of the answerable ones, cross-validated (bench/README.md, "Abstention").
pub const WEIGHTS: [f32; 5] = [-4.109, 3.998, 2.968, 2.682, -3.109];

/// The evidence as the model's inputs (`missing`, `agree` and `keyword_hits` are kept for
/// the record: they did not help the fit).
pub fn features(e: &Evidence) -> [f32; 4] {
    [
        e.best_cosine,
        e.cosine_gap,
        e.coverage_three,
        e.missing_rare.min(2) as f32 / 2.0,
    ]
}

/// Probability (0–1) that the documents answer the question: the logistic model's, or
/// the re-ranker's best score when one ran (a model that read the passages with the
/// question is better evidence than the signals of the search).
pub fn confidence(e: &Evidence) -> f32 {
    if let Some(r) = e.rerank_best {
        return r;
    }
    let x = features(e);
    let mut z = WEIGHTS[0];
    for (w, v) in WEIGHTS[1..].iter().zip(x) {
        z += w * v;
    }
    sigmoid(z)
}

/// The stems of the words of `text`.
pub fn stem_set(text: &str) -> std::collections::HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| porter_stemmer::stem(&w.to_lowercase()))
        .collect()
}

/// Stems of `terms`, as keyword search compares them.
pub fn stems(terms: &[String]) -> Vec<String> {
    terms
        .iter()
        .map(|t| porter_stemmer::stem(&t.to_lowercase()))
        .collect()
}

/// Share of `wanted` (stems) that occur among the words of `text`.
pub fn coverage(wanted: &[String], text: &str) -> f32 {
    if wanted.is_empty() {
        return 0.0;
    }
    let words = stem_set(text);
    wanted.iter().filter(|w| words.contains(*w)).count() as f32 / wanted.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_counts_stemmed_terms_found_in_the_text() {
        let wanted = stems(&["commits".into(), "reverting".into(), "kubernetes".into()]);
        let c = coverage(&wanted, "To revert a commit, use git revert.");
        assert!((c - 2.0 / 3.0).abs() < 1e-6, "{c}");
        assert_eq!(coverage(&[], "anything"), 0.0);
    }
}
