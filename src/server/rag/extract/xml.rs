//! XML read as a flat stream of events (quick-xml), so a document's depth costs nothing:
//! the readers of Office and OpenDocument files keep their own small state instead of a tree.

use std::borrow::Cow;

use quick_xml::{Reader, events::Event};

/// One event, names without their namespace prefix (`w:p` is `p`).
pub enum Node<'a> {
    Start { name: &'a str, attrs: Attrs },
    End { name: &'a str },
    Text(Cow<'a, str>),
}

/// An element's attributes by local name.
#[derive(Default)]
pub struct Attrs(Vec<(String, String)>);

impl Attrs {
    pub fn get(&self, local: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == local).map(|(_, v)| v.as_str())
    }
}

fn local(qualified: &str) -> &str {
    qualified.rsplit_once(':').map_or(qualified, |(_, l)| l)
}

/// Calls `f` for each start tag (an empty element is a start and an end), end tag and
/// piece of text of `xml`, entity references resolved.
pub fn walk(xml: &str, mut f: impl FnMut(Node<'_>)) -> Result<(), String> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(false);
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("malformed XML at byte {}: {e}", reader.buffer_position()))?;
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let qualified = e.name().as_ref().to_owned();
                let name = local(&qualified);
                let attrs = Attrs(
                    e.attributes()
                        .filter_map(Result::ok)
                        .map(|a| {
                            let key = a.key.as_ref().to_owned();
                            let value = a
                                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .map_or_else(|_| a.value.to_string(), Cow::into_owned);
                            (local(&key).to_owned(), value)
                        })
                        .collect(),
                );
                f(Node::Start { name, attrs });
                if empty {
                    f(Node::End { name });
                }
            }
            Event::End(e) => {
                let qualified = e.name().as_ref().to_owned();
                f(Node::End {
                    name: local(&qualified),
                });
            }
            Event::Text(t) => f(Node::Text(Cow::Owned(t.xml10_content().into_owned()))),
            Event::CData(t) => f(Node::Text(Cow::Owned(t.into_inner().into_owned()))),
            Event::GeneralRef(r) => {
                let text = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    _ => quick_xml::escape::resolve_predefined_entity(&r).map(str::to_owned),
                };
                if let Some(text) = text {
                    f(Node::Text(Cow::Owned(text)));
                }
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

/// The text of the first element named `local` (e.g. `dc:title` in a metadata file).
pub fn first_text(xml: &str, local: &str) -> Option<String> {
    let mut depth = 0usize;
    let mut found = false;
    let mut text = String::new();
    walk(xml, |node| match node {
        Node::Start { name, .. } if !found && (depth > 0 || name == local) => depth += 1,
        Node::End { .. } if depth > 0 => {
            depth -= 1;
            found |= depth == 0;
        }
        Node::Text(t) if depth > 0 => text.push_str(&t),
        _ => {}
    })
    .ok()?;
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then_some(text)
}
