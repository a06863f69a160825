//! What the embedded model is asked to write and how its text becomes the answer's shape:
//! stop strings, JSON by grammar, and tool calls.
//!
//! Tool calls use one format for every chat template, the generic JSON format local
//! OpenAI-compatible servers use for models without a tool-call format of their own: the
//! tools are described in the system message, and the answer is constrained by a grammar
//! to `{"name": …, "arguments": {…}}` when a call is required, or to
//! `{"tool_call": {"name": …, "arguments": {…}}}` / `{"response": …}` when the model may
//! choose. The text is then parsed into a tool call or the answer's content.

use serde_json::{Value, json};

use crate::server::llm::{GenerationOptions, OutputFormat, PromptMessage, PromptRole, ToolChoice, ToolSpec};

/// How the model's text maps to the answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Text (or JSON by `response_format`), streamed as it comes.
    Plain,
    /// The whole text is one call object.
    MustCall,
    /// The whole text is `{"tool_call": …}` or `{"response": …}`; `json_response` when the
    /// response is itself JSON (by `response_format`), else a string.
    MayCall { json_response: bool },
}

/// The JSON Schema the answer is constrained to, and how to read the answer.
pub fn plan(options: &GenerationOptions) -> (Option<Value>, Mode) {
    let format = match &options.format {
        OutputFormat::Text => None,
        OutputFormat::JsonObject => Some(json!({"type": "object"})),
        OutputFormat::JsonSchema { schema, .. } => Some(schema.clone()),
    };
    if !options.may_call_tools() {
        return (format, Mode::Plain);
    }
    let offered: Vec<&ToolSpec> = match &options.tool_choice {
        ToolChoice::Function(name) => options.tools.iter().filter(|t| &t.name == name).collect(),
        _ => options.tools.iter().collect(),
    };
    let calls: Vec<Value> = offered.iter().map(|t| call_schema(t)).collect();
    let call = if calls.len() == 1 {
        calls.into_iter().next().unwrap_or_default()
    } else {
        json!({"anyOf": calls})
    };
    match options.tool_choice {
        ToolChoice::Required | ToolChoice::Function(_) => (Some(call), Mode::MustCall),
        _ => {
            let json_response = format.is_some();
            let response = format.unwrap_or_else(|| json!({"type": "string"}));
            let schema = json!({"anyOf": [
                object(&[("tool_call", call)]),
                object(&[("response", response)]),
            ]});
            (Some(schema), Mode::MayCall { json_response })
        }
    }
}

/// A closed object with exactly these properties, in this order.
fn object(properties: &[(&str, Value)]) -> Value {
    let names: Vec<&str> = properties.iter().map(|(n, _)| *n).collect();
    let props: serde_json::Map<String, Value> = properties
        .iter()
        .map(|(n, s)| ((*n).to_owned(), s.clone()))
        .collect();
    json!({"type": "object", "properties": props, "required": names, "additionalProperties": false})
}

fn call_schema(tool: &ToolSpec) -> Value {
    let arguments = tool
        .parameters
        .clone()
        .unwrap_or_else(|| json!({"type": "object"}));
    object(&[("name", json!({"const": tool.name})), ("arguments", arguments)])
}

/// The messages as the model reads them: the tools described in the system message, past
/// calls written as the JSON the model would have written, tool results as user turns
/// (templates without a tool format have no tool role).
pub fn prompt(messages: &[PromptMessage], options: &GenerationOptions, mode: &Mode) -> Vec<PromptMessage> {
    let mut out: Vec<PromptMessage> = messages
        .iter()
        .map(|m| match m.role {
            PromptRole::Assistant if !m.tool_calls.is_empty() => {
                let calls: Vec<String> = m
                    .tool_calls
                    .iter()
                    .map(|c| {
                        let arguments: Value =
                            serde_json::from_str(&c.arguments).unwrap_or(Value::String(c.arguments.clone()));
                        json!({"name": c.name, "arguments": arguments}).to_string()
                    })
                    .collect();
                let text = [m.content.as_str()]
                    .into_iter()
                    .chain(calls.iter().map(String::as_str))
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
                    .join("\n");
                PromptMessage::text(PromptRole::Assistant, text)
            }
            PromptRole::Tool => PromptMessage::text(
                PromptRole::User,
                format!(
                    "Result of the function call {}:\n{}",
                    m.tool_call_id.as_deref().unwrap_or_default(),
                    m.content
                ),
            ),
            _ => PromptMessage::text(m.role, m.content.clone()),
        })
        .collect();
    if *mode == Mode::Plain {
        return out;
    }
    let instructions = tool_instructions(&options.tools, mode);
    match out.first_mut() {
        Some(first) if first.role == PromptRole::System => {
            first.content = format!("{}\n\n{instructions}", first.content);
        }
        _ => out.insert(0, PromptMessage::text(PromptRole::System, instructions)),
    }
    out
}

fn tool_instructions(tools: &[ToolSpec], mode: &Mode) -> String {
    let mut text = String::from("You can call these functions:\n");
    for t in tools {
        let parameters = t.parameters.clone().unwrap_or_else(|| json!({"type": "object"}));
        text.push_str(&format!(
            "- {}: {}. Arguments (JSON Schema): {parameters}\n",
            t.name,
            t.description.as_deref().unwrap_or("no description")
        ));
    }
    text.push_str(match mode {
        Mode::MustCall => "Answer with the call as JSON: {\"name\": \"<function>\", \"arguments\": {…}}.",
        _ => {
            "To call a function answer {\"tool_call\": {\"name\": \"<function>\", \"arguments\": {…}}}; \
             otherwise answer {\"response\": \"<your answer>\"}."
        }
    });
    text
}

/// What the model's whole text means under a tool mode.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    Content(String),
    Call { name: String, arguments: String },
}

/// Reads the text of a tool-mode answer; `None` when it is not the JSON it had to be (an
/// answer cut by `max_tokens`).
pub fn read(text: &str, mode: &Mode) -> Option<Read> {
    let value: Value = serde_json::from_str(text.trim()).ok()?;
    let call = |c: &Value| {
        Some(Read::Call {
            name: c["name"].as_str()?.to_owned(),
            arguments: c
                .get("arguments")
                .map(Value::to_string)
                .unwrap_or_else(|| "{}".into()),
        })
    };
    match mode {
        Mode::Plain => Some(Read::Content(text.to_owned())),
        Mode::MustCall => call(&value),
        Mode::MayCall { json_response } => match (value.get("tool_call"), value.get("response")) {
            (Some(c), _) => call(c),
            (None, Some(Value::String(s))) if !json_response => Some(Read::Content(s.clone())),
            (None, Some(v)) => Some(Read::Content(v.to_string())),
            (None, None) => None,
        },
    }
}

/// A call id as OpenAI writes them.
pub fn call_id() -> String {
    format!("call_{}", uuid::Uuid::now_v7().simple())
}

/// Watches decoded text for stop strings. Text that could be the start of a stop string
/// is held back until the next piece shows whether it is, so a stop string never leaves.
#[derive(Debug, Default)]
pub struct StopScan {
    stops: Vec<String>,
    held: String,
}

impl StopScan {
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops,
            held: String::new(),
        }
    }

    /// Takes the next piece: the text that may be sent now, and whether a stop string was
    /// reached (then the text is what came before it, and generation ends).
    pub fn push(&mut self, piece: &str) -> (String, bool) {
        if self.stops.is_empty() {
            return (piece.to_owned(), false);
        }
        self.held.push_str(piece);
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            let before = self.held[..at].to_owned();
            self.held.clear();
            return (before, true);
        }
        // Hold back the longest tail that is a prefix of a stop string.
        let keep = self
            .stops
            .iter()
            .flat_map(|s| {
                s.char_indices()
                    .map(|(i, _)| i)
                    .skip(1)
                    .chain(std::iter::once(s.len()))
                    .filter(|&n| self.held.ends_with(&s[..n]))
            })
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_owned();
        self.held.drain(..cut);
        (out, false)
    }

    /// What is still held when generation ends without a stop string.
    pub fn rest(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::llm::ToolCall;

    fn scan(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut s = StopScan::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            let (text, stopped) = s.push(p);
            out.push_str(&text);
            if stopped {
                return (out, true);
            }
        }
        out.push_str(&s.rest());
        (out, false)
    }

    #[test]
    fn stop_strings_end_the_answer_and_never_leave() {
        assert_eq!(
            scan(&["END"], &["one two E", "N", "D three"]),
            ("one two ".into(), true)
        );
        assert_eq!(
            scan(&["\n\n", "###"], &["a\n", "b##", "#c"]),
            ("a\nb".into(), true)
        );
        // A held prefix that turns out not to be a stop string is sent.
        assert!(scan(&["END"], &["the E", "ND", ""]).1);
        assert_eq!(scan(&["END"], &["the EN", "d"]), ("the ENd".into(), false));
        assert_eq!(scan(&[], &["x", "y"]), ("xy".into(), false));
        assert_eq!(scan(&["é!"], &["caf", "é", "!"]), ("caf".into(), true));
    }

    fn tools(choice: ToolChoice) -> GenerationOptions {
        GenerationOptions {
            tools: vec![ToolSpec {
                name: "get_weather".into(),
                description: Some("Weather of a city".into()),
                parameters: Some(
                    json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
                ),
                strict: None,
            }],
            tool_choice: choice,
            ..Default::default()
        }
    }

    #[test]
    fn tool_answers_are_read_into_calls_or_content() {
        let (schema, mode) = plan(&tools(ToolChoice::Required));
        assert_eq!(mode, Mode::MustCall);
        assert_eq!(schema.unwrap()["properties"]["name"]["const"], "get_weather");
        let read_call = read(
            r#"{"name": "get_weather", "arguments": {"city": "Paris"}}"#,
            &mode,
        )
        .unwrap();
        assert_eq!(
            read_call,
            Read::Call {
                name: "get_weather".into(),
                arguments: r#"{"city":"Paris"}"#.into()
            }
        );
        let (_, mode) = plan(&tools(ToolChoice::Auto));
        assert_eq!(mode, Mode::MayCall { json_response: false });
        assert_eq!(
            read(r#"{"response": "Hello"}"#, &mode),
            Some(Read::Content("Hello".into()))
        );
        assert!(matches!(
            read(
                r#"{"tool_call": {"name": "get_weather", "arguments": {}}}"#,
                &mode
            ),
            Some(Read::Call { .. })
        ));
        assert_eq!(read(r#"{"tool_call": {"na"#, &mode), None);
        assert_eq!(plan(&tools(ToolChoice::None)).1, Mode::Plain);
    }

    #[test]
    fn the_prompt_describes_tools_and_replays_calls() {
        let options = tools(ToolChoice::Auto);
        let (_, mode) = plan(&options);
        let mut call = PromptMessage::text(PromptRole::Assistant, "");
        call.tool_calls.push(ToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        });
        let mut result = PromptMessage::text(PromptRole::Tool, "18 °C");
        result.tool_call_id = Some("call_1".into());
        let p = prompt(
            &[PromptMessage::text(PromptRole::User, "Weather?"), call, result],
            &options,
            &mode,
        );
        assert_eq!(p[0].role, PromptRole::System);
        assert!(p[0].content.contains("get_weather: Weather of a city"));
        assert!(
            p[2].content.contains(r#""name":"get_weather""#),
            "{}",
            p[2].content
        );
        assert_eq!(p[3].role, PromptRole::User);
        assert!(p[3].content.contains("call_1") && p[3].content.contains("18 °C"));
    }
}
