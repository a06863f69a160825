//! Splits extracted text into chunks of about `size` tokens with `overlap` tokens carried
//! over, never across a heading. Each chunk keeps the path of headings above it
//! ("Guide > Setup"), which is embedded with it as context and shown in citations.

use std::ops::ControlFlow;

/// One piece of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Headings above the text, outermost first, joined by " > ".
    pub heading: Option<String>,
    pub content: String,
    /// Byte range of `content` in the extracted text.
    pub start: usize,
    pub end: usize,
    /// Tokens of `heading` + `content`, as embedded.
    pub tokens: usize,
}

impl Chunk {
    /// The text that is embedded: heading path, then content.
    pub fn embedding_text(&self) -> String {
        match &self.heading {
            Some(h) => format!("{h}\n\n{}", self.content),
            None => self.content.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ChunkSizes {
    pub size: usize,
    pub overlap: usize,
    /// Hard limit of the embedding model; a heading is shortened to stay under it.
    pub limit: usize,
}

/// A sentence or a line, with its byte range and its tokens (those it adds to a text it
/// is part of, without the model's special tokens).
#[derive(Debug, Clone, Copy)]
struct Unit {
    start: usize,
    end: usize,
    tokens: usize,
}

/// Token arithmetic that stays linear in the text: every piece is counted once, and the
/// tokens of a run of pieces are the special tokens plus the pieces' own. Pieces are cut
/// at whitespace, which the embedding models' tokenizers split on anyway, so the sum is
/// their count; a chunk's own count is still taken, and trimmed to fit, in case it is not.
struct Counter<'a> {
    count: &'a dyn Fn(&str) -> usize,
    /// What an empty text counts (the special tokens every input gets).
    base: usize,
}

impl<'a> Counter<'a> {
    fn new(count: &'a dyn Fn(&str) -> usize) -> Self {
        Self {
            count,
            base: count(""),
        }
    }

    /// Tokens `piece` adds to a text.
    fn own(&self, piece: &str) -> usize {
        (self.count)(piece).saturating_sub(self.base)
    }
}

/// The level of a Markdown heading line (`## Setup` is 2): one to six `#` and a space.
pub fn heading_level(line: &str) -> Option<usize> {
    let level = line.chars().take_while(|c| *c == '#').count();
    ((1..=6).contains(&level) && line[level..].starts_with(' ')).then_some(level)
}

/// Sections: the heading path and the byte range of the body under it.
fn sections(text: &str) -> Vec<(Option<String>, usize, usize)> {
    let mut out = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut body_start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if let Some(level) = heading_level(trimmed) {
            out.push((join(&path), body_start, offset));
            let title = trimmed[level..].trim().to_owned();
            path.retain(|(l, _)| *l < level);
            path.push((level, title));
            body_start = offset + line.len();
        }
        offset += line.len();
    }
    out.push((join(&path), body_start, text.len()));
    out.retain(|(_, s, e)| !text[*s..*e].trim().is_empty());
    out
}

fn join(path: &[(usize, String)]) -> Option<String> {
    (!path.is_empty()).then(|| {
        path.iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join(" > ")
    })
}

/// Sentence-ish ranges of `text[start..end]` (not counted yet): split after `.`, `!`,
/// `?` followed by whitespace, and at line ends. Whitespace-only ones are dropped.
fn units(text: &str, start: usize, end: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let body = &text[start..end];
    let bytes = body.as_bytes();
    let mut unit_start = 0;
    for (i, c) in body.char_indices() {
        let ends_sentence =
            matches!(c, '.' | '!' | '?') && bytes.get(i + 1).is_none_or(|b| b.is_ascii_whitespace());
        if c == '\n' || ends_sentence {
            let cut = i + c.len_utf8();
            out.push((start + unit_start, start + cut));
            unit_start = cut;
        }
    }
    out.push((start + unit_start, end));
    out.retain(|&(s, e)| !text[s..e].trim().is_empty());
    out
}

/// `unit` as pieces of at most `max` tokens, cut at whitespace (a single word longer
/// than that stays whole).
fn split_long(text: &str, unit: Unit, max: usize, counter: &Counter) -> Vec<Unit> {
    if counter.base + unit.tokens <= max {
        return vec![unit];
    }
    let mut out = Vec::new();
    let (mut piece_start, mut piece_tokens) = (unit.start, 0);
    let mut word_start = unit.start;
    let ends = text[unit.start..unit.end]
        .char_indices()
        .filter(|(_, c)| c.is_whitespace())
        .map(|(i, _)| unit.start + i)
        .chain([unit.end]);
    for word_end in ends {
        let word = counter.own(&text[word_start..word_end]);
        if counter.base + piece_tokens + word > max && word_start > piece_start {
            out.push(Unit {
                start: piece_start,
                end: word_start,
                tokens: piece_tokens,
            });
            (piece_start, piece_tokens) = (word_start, 0);
        }
        piece_tokens += word;
        word_start = word_end;
    }
    out.push(Unit {
        start: piece_start,
        end: unit.end,
        tokens: piece_tokens,
    });
    out
}

/// Chunks of `text`. `count` gives the embedding model's token count of a string.
pub fn chunk(text: &str, sizes: ChunkSizes, count: &dyn Fn(&str) -> usize) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    chunk_each(text, sizes, count, &mut |c, _| {
        chunks.push(c);
        ControlFlow::Continue(())
    });
    chunks
}

/// Makes the chunks of `text` one at a time and hands each to `emit` with how far into
/// the text it reaches (in bytes), until `emit` says to stop. Time and memory grow
/// linearly with the text.
pub fn chunk_each(
    text: &str,
    sizes: ChunkSizes,
    count: &dyn Fn(&str) -> usize,
    emit: &mut dyn FnMut(Chunk, usize) -> ControlFlow<()>,
) {
    let counter = Counter::new(count);
    for (heading, start, end) in sections(text) {
        let heading = heading.map(|h| shorten(&h, sizes.limit / 4, count));
        let heading_tokens = heading.as_deref().map_or(0, |h| count(&format!("{h}\n\n")));
        let room = sizes.size.min(sizes.limit.saturating_sub(heading_tokens)).max(1);
        // Tokens the heading adds to a chunk's own.
        let heading_extra = heading_tokens.saturating_sub(counter.base);
        // Units are counted (and long ones split) as the chunks reach them.
        let mut pending = units(text, start, end).into_iter();
        let mut all: Vec<Unit> = Vec::new();
        let mut have = |all: &mut Vec<Unit>, j: usize| {
            while all.len() <= j {
                let Some((s, e)) = pending.next() else {
                    return false;
                };
                let unit = Unit {
                    start: s,
                    end: e,
                    tokens: counter.own(&text[s..e]),
                };
                all.extend(split_long(text, unit, room, &counter));
            }
            true
        };
        let mut i = 0;
        while have(&mut all, i) {
            // Grow the chunk unit by unit while it fits.
            let mut j = i + 1;
            let mut tokens = counter.base + all[i].tokens;
            while have(&mut all, j) && tokens + all[j].tokens <= room {
                tokens += all[j].tokens;
                j += 1;
            }
            let chunk = loop {
                let (s, e) = (all[i].start, all[j - 1].end);
                let piece = Chunk {
                    tokens: 0,
                    heading: heading.clone(),
                    start: s + (text[s..e].len() - text[s..e].trim_start().len()),
                    end: s + text[s..e].trim_end().len(),
                    content: text[s..e].trim().to_owned(),
                };
                let tokens = count(&piece.embedding_text());
                // The sum of the units' tokens is the count for the usual tokenizers;
                // should a tokenizer disagree, the chunk gives back units until it fits.
                if j == i + 1 || tokens.saturating_sub(heading_extra) <= room {
                    break Chunk { tokens, ..piece };
                }
                j -= 1;
            };
            if emit(chunk, all[j - 1].end).is_break() {
                return;
            }
            if !have(&mut all, j) {
                break;
            }
            // Step back over the last units that fit in the overlap, but always advance.
            let mut next = j;
            let mut back = counter.base;
            while next - 1 > i && back + all[next - 1].tokens <= sizes.overlap {
                back += all[next - 1].tokens;
                next -= 1;
            }
            i = next;
        }
    }
}

fn shorten(heading: &str, max: usize, count: &dyn Fn(&str) -> usize) -> String {
    if count(heading) <= max {
        return heading.to_owned();
    }
    // Keep the innermost headings: they say most about the text below.
    let parts: Vec<&str> = heading.split(" > ").collect();
    for skip in 1..parts.len() {
        let candidate = parts[skip..].join(" > ");
        if count(&candidate) <= max {
            return candidate;
        }
    }
    let words: Vec<&str> = parts.last().unwrap_or(&"").split_whitespace().collect();
    let mut kept = String::new();
    for w in words {
        let next = if kept.is_empty() {
            w.to_owned()
        } else {
            format!("{kept} {w}")
        };
        if count(&next) > max {
            break;
        }
        kept = next;
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words as tokens: enough to test the arithmetic without a model.
    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    const SIZES: ChunkSizes = ChunkSizes {
        size: 12,
        overlap: 6,
        limit: 20,
    };

    #[test]
    fn chunks_stay_within_sections_and_carry_their_heading_path() {
        let text = "Intro line.\n\n# Guide\n\n## Setup\n\nInstall it. Then run it.\n\n# Other\n\nDone.";
        let got = chunk(text, SIZES, &words);
        let summary: Vec<(Option<&str>, &str)> = got
            .iter()
            .map(|c| (c.heading.as_deref(), c.content.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (None, "Intro line."),
                (Some("Guide > Setup"), "Install it. Then run it."),
                (Some("Other"), "Done."),
            ]
        );
        for c in &got {
            assert_eq!(&text[c.start..c.end], c.content);
        }
    }

    #[test]
    fn long_sections_overlap_and_respect_the_size() {
        let sentences: Vec<String> = (0..30).map(|i| format!("Sentence number {i} is here.")).collect();
        let text = sentences.join(" ");
        let got = chunk(&text, SIZES, &words);
        assert!(got.len() > 5);
        for c in &got {
            assert!(words(&c.content) <= SIZES.size, "{c:?}");
        }
        for pair in got.windows(2) {
            assert!(pair[1].start < pair[0].end, "consecutive chunks overlap");
            assert!(pair[1].start > pair[0].start, "and always advance");
        }
        assert!(
            got.last()
                .unwrap()
                .content
                .ends_with("Sentence number 29 is here.")
        );
    }

    #[test]
    fn every_byte_is_counted_a_few_times_at_most() {
        // A 100 MB spreadsheet is a million short lines in one section: counting each
        // growing chunk again made that hours of tokenizing.
        let text: String = (0..20_000)
            .map(|i| {
                format!(
                    "2026-01-{:02} | E{i:08} | Some words about row {i}. | {i}.50\n",
                    i % 28 + 1
                )
            })
            .collect();
        let counted = std::cell::Cell::new(0usize);
        let count = |s: &str| {
            counted.set(counted.get() + s.len());
            words(s)
        };
        let mut seen = 0;
        let mut reached = 0;
        chunk_each(&text, SIZES, &count, &mut |c, at| {
            assert!(at >= reached && at >= c.end, "progress never goes back");
            reached = at;
            seen += 1;
            ControlFlow::Continue(())
        });
        assert_eq!(reached, text.len(), "the last chunk reaches the end");
        assert!(seen > 1000);
        assert!(
            counted.get() < 4 * text.len(),
            "{} bytes counted for {}",
            counted.get(),
            text.len()
        );
    }

    #[test]
    fn chunking_stops_when_told() {
        let text = "One sentence here. ".repeat(500);
        let mut seen = 0;
        chunk_each(&text, SIZES, &words, &mut |_, _| {
            seen += 1;
            if seen == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(seen, 3);
    }

    #[test]
    fn a_sentence_longer_than_a_chunk_is_split_at_words() {
        let text = "word ".repeat(50);
        let got = chunk(text.trim(), SIZES, &words);
        assert!(got.iter().all(|c| words(&c.content) <= SIZES.size));
        assert!(got.len() >= 4);
    }
}
