//! A small chat-completions server for tests, on a free loopback port: it records every
//! request it gets and answers per a script (text, delay, a status with `Retry-After`, a raw
//! body, or the prompt echoed back as a model obeying every instruction would).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::watch;

/// How to answer one request.
#[derive(Debug, Clone)]
pub enum Step {
    /// 200 with this text as the answer.
    Answer(String),
    /// 200 with every prompt message's content, joined (a model that does whatever it is told).
    EchoPrompt,
    /// 200 with this raw body.
    Body(&'static str),
    /// This status, with `Retry-After` seconds when given.
    Status(u16, Option<&'static str>),
    /// Wait, then answer per the inner step.
    Delayed(Duration, Box<Step>),
}

pub fn answer(text: &str) -> Step {
    Step::Answer(text.to_owned())
}

/// A request the server got.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: Instant,
    pub body: Value,
    pub authorization: Option<String>,
}

impl Call {
    /// The `messages` of the request.
    pub fn messages(&self) -> Vec<Value> {
        self.body["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Everything the model was sent, as one string.
    pub fn prompt_text(&self) -> String {
        self.messages()
            .iter()
            .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

struct Script {
    steps: VecDeque<Step>,
    otherwise: Step,
    calls: Vec<Call>,
}

#[derive(Clone)]
struct Shared {
    script: Arc<Mutex<Script>>,
    received: watch::Sender<usize>,
    answered: watch::Sender<usize>,
}

/// The running server (stops when dropped).
pub struct FakeLlm {
    addr: SocketAddr,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl FakeLlm {
    /// Answers with `steps` in order, then with `otherwise` for every further request.
    pub async fn start(steps: Vec<Step>, otherwise: Step) -> FakeLlm {
        let shared = Shared {
            script: Arc::new(Mutex::new(Script {
                steps: steps.into(),
                otherwise,
                calls: Vec::new(),
            })),
            received: watch::channel(0).0,
            answered: watch::channel(0).0,
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake LLM");
        let addr = listener.local_addr().expect("fake LLM address");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake LLM server");
        });
        FakeLlm {
            addr,
            shared,
            server,
        }
    }

    /// The API base to configure, `http://127.0.0.1:{port}/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.script.lock().expect("script").calls.clone()
    }

    /// Waits until at least `n` requests have arrived.
    pub async fn wait_for_calls(&self, n: usize) {
        wait_until(&self.shared.received, n, "requests to arrive").await;
    }

    /// Waits until at least `n` responses have been sent.
    pub async fn wait_for_answers(&self, n: usize) {
        wait_until(&self.shared.answered, n, "responses to be sent").await;
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn wait_until(counter: &watch::Sender<usize>, n: usize, what: &str) {
    let mut rx = counter.subscribe();
    tokio::time::timeout(Duration::from_secs(60), rx.wait_for(|count| *count >= n))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {n} {what}"))
        .expect("fake LLM counter");
}

async fn chat(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let step = {
        let mut script = shared.script.lock().expect("script");
        script.calls.push(Call {
            at: Instant::now(),
            body: body.clone(),
            authorization: headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
        script
            .steps
            .pop_front()
            .unwrap_or_else(|| script.otherwise.clone())
    };
    shared.received.send_modify(|n| *n += 1);
    let response = respond(step, &body).await;
    shared.answered.send_modify(|n| *n += 1);
    response
}

async fn respond(mut step: Step, request: &Value) -> Response {
    while let Step::Delayed(delay, inner) = step {
        tokio::time::sleep(delay).await;
        step = *inner;
    }
    match step {
        Step::Answer(text) => completion(&text),
        Step::EchoPrompt => {
            let call = Call {
                at: Instant::now(),
                body: request.clone(),
                authorization: None,
            };
            completion(&call.prompt_text())
        }
        Step::Body(raw) => ([(header::CONTENT_TYPE, "application/json")], raw).into_response(),
        Step::Status(code, retry_after) => {
            let status = StatusCode::from_u16(code).expect("status code");
            let body = axum::Json(json!({"error": {"message": format!("scripted {code}")}}));
            match retry_after {
                Some(seconds) => (status, [(header::RETRY_AFTER, seconds)], body).into_response(),
                None => (status, body).into_response(),
            }
        }
        Step::Delayed(..) => unreachable!("delays are unwrapped above"),
    }
}

fn completion(text: &str) -> Response {
    axum::Json(json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }))
    .into_response()
}
