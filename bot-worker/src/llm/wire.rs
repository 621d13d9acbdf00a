//! The chat-completions wire format (OpenAI's, as spoken by hosted APIs, llama.cpp, vLLM and
//! Ollama): the request body, and reading the answer out of a response body that may be
//! anything — malformed JSON, no choices, empty content.

use serde::{Deserialize, Serialize};

/// The reply when the server's answer cannot be used.
pub const UNREADABLE_ANSWER_TEXT: &str =
    "Sorry, I couldn't come up with a usable answer this time. Please try again.";

/// One message of a prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

impl Message {
    pub fn system(content: String) -> Self {
        Message {
            role: "system",
            content,
        }
    }

    pub fn user(content: String) -> Self {
        Message {
            role: "user",
            content,
        }
    }
}

/// The body of `POST {base}/chat/completions`.
#[derive(Debug, Serialize)]
pub struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: &'a [Message],
    pub max_tokens: u32,
    pub temperature: f32,
    pub stream: bool,
}

#[derive(Debug, Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<Choice>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: Option<AnswerMessage>,
}

#[derive(Debug, Deserialize)]
struct AnswerMessage {
    /// A string, or (some servers) a list of `{type, text}` parts.
    content: Option<serde_json::Value>,
    refusal: Option<String>,
}

/// Why an answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadAnswer {
    #[error("the body is not a chat-completions response: {0}")]
    Malformed(String),
    #[error("the response has no choices")]
    NoChoices,
    #[error("the answer is empty")]
    Empty,
}

/// The text of the first choice of a response body.
pub fn answer_text(body: &[u8]) -> Result<String, BadAnswer> {
    let response: ChatResponse =
        serde_json::from_slice(body).map_err(|e| BadAnswer::Malformed(e.to_string()))?;
    let choice = response
        .choices
        .into_iter()
        .next()
        .ok_or(BadAnswer::NoChoices)?;
    let message = choice.message.ok_or(BadAnswer::Empty)?;
    let text = message
        .content
        .as_ref()
        .map(content_text)
        .filter(|t| !t.trim().is_empty())
        .or(message.refusal)
        .filter(|t| !t.trim().is_empty())
        .ok_or(BadAnswer::Empty)?;
    Ok(text.trim().to_owned())
}

/// A content value as text: the string itself, or the `text` of every part joined.
fn content_text(content: &serde_json::Value) -> String {
    match content {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(|t| t.as_str()))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_choice() {
        let body = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":" Hi! "},"finish_reason":"stop"}]}"#;
        assert_eq!(answer_text(body).unwrap(), "Hi!");
        let parts = br#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}]}"#;
        assert_eq!(answer_text(parts).unwrap(), "ab");
        let refusal =
            br#"{"choices":[{"message":{"content":null,"refusal":"I can't help with that."}}]}"#;
        assert_eq!(answer_text(refusal).unwrap(), "I can't help with that.");
    }

    #[test]
    fn bad_bodies_are_errors_not_panics() {
        assert!(matches!(
            answer_text(b"<html>oops"),
            Err(BadAnswer::Malformed(_))
        ));
        assert!(matches!(
            answer_text(b"[1,2]"),
            Err(BadAnswer::Malformed(_))
        ));
        assert_eq!(answer_text(br#"{"choices":[]}"#), Err(BadAnswer::NoChoices));
        assert_eq!(
            answer_text(br#"{"error":{"message":"x"}}"#),
            Err(BadAnswer::NoChoices)
        );
        assert_eq!(
            answer_text(br#"{"choices":[{"message":{"content":"   "}}]}"#),
            Err(BadAnswer::Empty)
        );
        assert_eq!(answer_text(br#"{"choices":[{}]}"#), Err(BadAnswer::Empty));
    }
}
