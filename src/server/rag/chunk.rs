//! Splits extracted text into chunks of about `size` tokens with `overlap` tokens carried
//! over, never across a heading. Each chunk keeps the path of headings above it
//! ("Guide > Setup"), which is embedded with it as context and shown in citations.

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

/// A sentence or a line, with its byte range.
#[derive(Debug, Clone, Copy)]
struct Unit {
    start: usize,
    end: usize,
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

/// Sentence-ish units of `text[start..end]`: split after `.`, `!`, `?` followed by
/// whitespace, and at line ends. Whitespace-only units are dropped.
fn units(text: &str, start: usize, end: usize) -> Vec<Unit> {
    let mut out = Vec::new();
    let body = &text[start..end];
    let mut unit_start = 0;
    let bytes = body.as_bytes();
    for (i, c) in body.char_indices() {
        let ends_sentence =
            matches!(c, '.' | '!' | '?') && bytes.get(i + 1).is_none_or(|b| b.is_ascii_whitespace());
        if c == '\n' || ends_sentence {
            let cut = i + c.len_utf8();
            out.push(Unit {
                start: start + unit_start,
                end: start + cut,
            });
            unit_start = cut;
        }
    }
    out.push(Unit {
        start: start + unit_start,
        end,
    });
    out.retain(|u| !text[u.start..u.end].trim().is_empty());
    out
}

/// Splits a unit longer than `max` tokens at word boundaries.
fn split_long(text: &str, unit: Unit, max: usize, count: &dyn Fn(&str) -> usize) -> Vec<Unit> {
    if count(&text[unit.start..unit.end]) <= max {
        return vec![unit];
    }
    let mut out = Vec::new();
    let mut piece_start = unit.start;
    let mut last_space = None;
    for (i, c) in text[unit.start..unit.end].char_indices() {
        let at = unit.start + i;
        if c.is_whitespace() {
            if count(&text[piece_start..at]) > max
                && let Some(cut) = last_space.filter(|&s| s > piece_start)
            {
                out.push(Unit {
                    start: piece_start,
                    end: cut,
                });
                piece_start = cut;
            }
            last_space = Some(at);
        }
    }
    out.push(Unit {
        start: piece_start,
        end: unit.end,
    });
    out
}

/// Chunks of `text`. `count` gives the embedding model's token count of a string.
pub fn chunk(text: &str, sizes: ChunkSizes, count: &dyn Fn(&str) -> usize) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    for (heading, start, end) in sections(text) {
        let heading = heading.map(|h| shorten(&h, sizes.limit / 4, count));
        let heading_tokens = heading.as_deref().map_or(0, |h| count(&format!("{h}\n\n")));
        let room = sizes.size.min(sizes.limit.saturating_sub(heading_tokens)).max(1);
        let all: Vec<Unit> = units(text, start, end)
            .into_iter()
            .flat_map(|u| split_long(text, u, room, count))
            .collect();
        let mut i = 0;
        while i < all.len() {
            // Grow the chunk unit by unit while it fits.
            let mut j = i + 1;
            while j < all.len() && count(&text[all[i].start..all[j].end]) <= room {
                j += 1;
            }
            let (s, e) = (all[i].start, all[j - 1].end);
            let content = text[s..e].trim().to_owned();
            let piece = Chunk {
                tokens: 0,
                heading: heading.clone(),
                start: s + (text[s..e].len() - text[s..e].trim_start().len()),
                end: s + text[s..e].trim_end().len(),
                content,
            };
            let tokens = count(&piece.embedding_text());
            chunks.push(Chunk { tokens, ..piece });
            if j >= all.len() {
                break;
            }
            // Step back over the last units that fit in the overlap, but always advance.
            let mut next = j;
            while next - 1 > i && count(&text[all[next - 1].start..all[j - 1].end]) <= sizes.overlap {
                next -= 1;
            }
            i = next;
        }
    }
    chunks
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
    fn a_sentence_longer_than_a_chunk_is_split_at_words() {
        let text = "word ".repeat(50);
        let got = chunk(text.trim(), SIZES, &words);
        assert!(got.iter().all(|c| words(&c.content) <= SIZES.size));
        assert!(got.len() >= 4);
    }
}
