//! The connection's loop: it waits for whatever comes first — its queue (or its close, or a
//! change of its guilds), the heartbeat, a send's answer, a replay's end, a client frame —
//! then handles it in one boxed step. What an idle connection's task keeps is the waits alone:
//! the handling's state (a batch being written, a frame being answered) exists only while it
//! runs (with the handling inline, the task kept ~350 bytes more per idle connection).

use bytes::Bytes;
use chat_shared::protocol::{ServerFrame, close_code};
use tungstenite::Message;

use super::Reader;
use super::sending::Sends;
use crate::ws::handle::{Outgoing, Wake};
use crate::ws::writer::{Writer, Written};

/// What woke the loop.
enum Event {
    Wake(Wake),
    Beat,
    Answer(ServerFrame),
    Replayed,
    Incoming(Option<Result<Message, tungstenite::Error>>),
}

impl Reader {
    /// Reads, writes and beats until the connection ends; `true` when the socket failed (no
    /// close frame can go out).
    pub(super) async fn run_loop(&mut self, writer: &mut Writer, queue: &mut Outgoing) -> bool {
        let mut ticker = tokio::time::interval(writer.heartbeat_period());
        ticker.tick().await;
        // Created on a first send and dropped once answered: an idle connection holds none.
        let mut sends = Sends::default();
        loop {
            // Writing comes first (biased): what is queued goes out before more is read.
            let event = tokio::select! {
                biased;
                wake = queue.next() => Event::Wake(wake),
                _ = ticker.tick() => Event::Beat,
                answer = sends.next() => Event::Answer(answer),
                // Boxed when first polled (only while a replay runs): the idle select keeps
                // the block's references, not the wait itself.
                _ = async { Box::pin(self.resumes.next(&self.state, &self.handle)).await },
                    if self.resumes.busy() => Event::Replayed,
                incoming = writer.socket.next(), if sends.has_room() => {
                    Event::Incoming(incoming)
                }
            };
            match Box::pin(self.step(event, writer, queue, &mut sends)).await {
                Written::Yes => {}
                Written::Closing => return false,
                Written::SocketFailed => return true,
            }
        }
    }

    /// Handles one event, then writes the connection's own replies it made.
    async fn step(
        &mut self,
        event: Event,
        writer: &mut Writer,
        queue: &mut Outgoing,
        sends: &mut Sends,
    ) -> Written {
        let written = match event {
            Event::Wake(Wake::Closed) => return Written::Closing,
            Event::Wake(Wake::Item(item)) => writer.write_batch(item, queue).await,
            Event::Wake(Wake::GuildsChanged) => {
                self.reload_guilds().await;
                Written::Yes
            }
            Event::Beat => writer.heartbeat().await,
            Event::Answer(answer) => {
                self.reply(answer);
                Written::Yes
            }
            Event::Replayed => Written::Yes,
            Event::Incoming(incoming) => {
                let Some(bytes) = self.incoming(incoming) else {
                    return Written::Closing;
                };
                if !bytes.is_empty() {
                    self.on_frame(&bytes, sends).await;
                }
                Written::Yes
            }
        };
        match written {
            Written::Yes if !self.own.is_empty() => writer.write_own(&mut self.own).await,
            other => other,
        }
    }

    /// The bytes of a client data frame (empty for a ping or pong); `None` when the socket
    /// ended (closed by the peer, lost, or failed: then closed with the code of the mistake).
    fn incoming(&self, incoming: Option<Result<Message, tungstenite::Error>>) -> Option<Bytes> {
        let incoming = incoming?;
        self.handle.touch();
        match incoming {
            Ok(Message::Text(text)) => Some(Bytes::from(text)),
            Ok(Message::Binary(bytes)) => Some(bytes),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => Some(Bytes::new()),
            Ok(Message::Close(_)) => None,
            Err(error) => {
                self.on_socket_error(error);
                None
            }
        }
    }

    /// Closes with the code that names the peer's mistake; a lost socket needs no code.
    fn on_socket_error(&self, error: tungstenite::Error) {
        let (code, reason) = match &error {
            tungstenite::Error::Capacity(_) => (close_code::FRAME_TOO_BIG, "frame too big"),
            tungstenite::Error::Utf8(_) => (close_code::INVALID_DATA, "text is not UTF-8"),
            tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            ) => return,
            tungstenite::Error::Protocol(_) => (close_code::PROTOCOL_ERROR, "protocol error"),
            _ => return,
        };
        tracing::debug!(%error, code, "closing on a socket error");
        self.handle.close(code, reason);
    }
}
