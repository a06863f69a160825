//! Markdown answers as safe HTML: CommonMark with tables, strikethrough and task lists.
//! Raw HTML in the model's output is shown as text, never interpreted; links keep only
//! http(s), mailto and relative targets; images become their alt text (no remote loads).
//! Code blocks get a Copy button (handled by the message's click listener) and syntax
//! highlighting for common languages (see `highlight`).

use pulldown_cmark::{CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd, html};

use super::highlight::highlight;

fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    match lower.split_once(':') {
        // A scheme is only allowed when it is one of these; `javascript:`, `data:` … are not.
        Some((scheme, _)) if !scheme.contains('/') => matches!(scheme, "http" | "https" | "mailto"),
        _ => true,
    }
}

/// An answer as HTML: a whole answer that is a JSON object or array (a conversation
/// asking for JSON) is shown formatted in a code block; anything else is Markdown.
pub fn answer_html(answer: &str) -> String {
    let trimmed = answer.trim();
    if trimmed.starts_with(['{', '['])
        && let Ok(value) = serde_json::from_str::<serde_json::Value>(trimmed)
        && let Ok(pretty) = serde_json::to_string_pretty(&value)
    {
        return to_html(&format!("```json\n{pretty}\n```"));
    }
    to_html(answer)
}

/// Renders `markdown` to HTML that is safe to insert into the page.
pub fn to_html(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(markdown, options).map(|event| match event {
        // The model's HTML is text to show, not markup to run.
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: if safe_url(&dest_url) {
                dest_url
            } else {
                CowStr::from("#")
            },
            title,
            id,
        }),
        Event::Start(Tag::Image { .. }) => Event::Text(CowStr::from("[image: ")),
        Event::End(TagEnd::Image) => Event::Text(CowStr::from("]")),
        other => other,
    });
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    let mut wrapped = Vec::new();
    // The language of the fenced block being read, and its text so far.
    let mut code: Option<(String, String)> = None;
    for event in events {
        match &event {
            Event::Start(Tag::CodeBlock(kind)) => {
                wrapped.push(Event::Html(CowStr::from(
                    "<div class=\"code-block\"><button type=\"button\" class=\"copy-code\" aria-label=\"Copy code\">Copy</button>",
                )));
                if let CodeBlockKind::Fenced(info) = kind {
                    let language = info.split_whitespace().next().unwrap_or_default().to_owned();
                    code = Some((language, String::new()));
                }
                wrapped.push(event);
            }
            Event::Text(text) if code.is_some() => {
                if let Some((_, buffer)) = code.as_mut() {
                    buffer.push_str(text);
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((language, text)) = code.take() {
                    // Highlighted (escaped by the highlighter), or plain text when the
                    // language is not one it knows.
                    wrapped.push(match highlight(&language, &text) {
                        Some(html) => Event::Html(CowStr::from(html)),
                        None => Event::Text(CowStr::from(text)),
                    });
                }
                wrapped.push(event);
                wrapped.push(Event::Html(CowStr::from("</div>")));
            }
            _ => wrapped.push(event),
        }
    }
    html::push_html(&mut out, wrapped.into_iter());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_answers_are_shown_formatted_and_escaped() {
        let html = answer_html(r#" {"name": "<b>Ada</b>", "year": 1815} "#);
        assert!(html.contains("language-json"), "{html}");
        assert!(html.contains("{\n  "), "formatted, one field per line: {html}");
        assert!(html.contains("1815"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(!answer_html("{not json").contains("language-json"));
        assert!(!answer_html("Plain words.").contains("language-json"));
    }

    #[test]
    fn renders_lists_tables_and_code_with_a_copy_button() {
        let html = to_html(
            "# Title\n\n- **one**\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```rust\nfn main() {}\n```\n",
        );
        assert!(html.contains("<h1>Title</h1>"));
        assert!(html.contains("<li><strong>one</strong></li>"));
        assert!(html.contains("<table>"));
        assert!(html.contains("<button type=\"button\" class=\"copy-code\""));
        assert!(
            html.contains("<code class=\"language-rust\"><span class=\"tok-kw\">fn</span> main() {}"),
            "{html}"
        );
        // Code of an unknown language stays plain, escaped.
        let plain = to_html("```text\n<b>x</b>\n```\n");
        assert!(plain.contains("&lt;b&gt;x&lt;/b&gt;"), "{plain}");
    }

    #[test]
    fn never_passes_html_or_script_urls_through() {
        let html = to_html(
            "<script>alert(1)</script>\n\nHi <img src=x onerror=alert(2)> [x](javascript:alert(3)) ![i](http://t/p.png)",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("href=\"#\""), "{html}");
        assert!(html.contains("[image: i]"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
    }
}
