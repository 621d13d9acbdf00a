//! A connection's WebSocket. tokio-tungstenite reads it (frames, limits, UTF-8, the answers
//! to the peer's pings and close), and sends our control frames (ping, close). Our data
//! frames are written straight to the stream: a header formatted by tungstenite's
//! [`FrameHeader`] and the payload — the bytes every recipient shares — in one vectored write
//! per batch. Through tungstenite each payload would be copied into a write buffer that grows
//! to the largest frame ever sent and is never shrunk (a presence snapshot left 5.8 KB on
//! every idle Socket.IO connection); here nothing is kept once a flush is done.
//!
//! Order on the wire is the order of the calls: tungstenite's own pending bytes (a pong it
//! owes) are flushed before data frames are written, and control frames are sent only
//! after the data fed before them. Writing is cancellation safe: progress is kept here, so a
//! flush stopped by a timeout or a close resumes where it was, and a close frame only ever
//! follows whole frames.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::{Sink, SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Data as OpData, OpCode};
use tungstenite::{Message, Utf8Bytes};

/// Frames handed to one `writev` at most (up to three slices each: header, payload, tail).
const FRAMES_PER_WRITE: usize = 32;
/// Slices a frame is written from.
const SLICES_PER_FRAME: usize = 3;
/// A server frame's header: 2 bytes, 8 more for the longest length, no mask.
const MAX_HEADER: usize = 10;

/// A data frame to send; its payload is shared, not copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    Text(Utf8Bytes),
    Binary(Bytes),
}

/// The peer took no bytes for a whole write timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stalled;

/// One frame waiting to be written: its payload is `payload` then `tail`.
#[derive(Debug)]
struct Pending {
    header: [u8; MAX_HEADER],
    header_len: u8,
    payload: Bytes,
    tail: Bytes,
}

impl Pending {
    fn new(data: Data) -> Self {
        match data {
            Data::Text(text) => Self::with_tail(OpData::Text, text.into(), Bytes::new()),
            Data::Binary(bytes) => Self::with_tail(OpData::Binary, bytes, Bytes::new()),
        }
    }

    fn with_tail(opcode: OpData, payload: Bytes, tail: Bytes) -> Self {
        let frame_header = FrameHeader {
            opcode: OpCode::Data(opcode),
            ..FrameHeader::default()
        };
        let mut header = [0; MAX_HEADER];
        let mut cursor = io::Cursor::new(&mut header[..]);
        // An unmasked header fits MAX_HEADER bytes for any length: formatting cannot fail.
        let length = (payload.len() + tail.len()) as u64;
        let formatted = frame_header.format(length, &mut cursor);
        debug_assert!(formatted.is_ok());
        let header_len = cursor.position() as u8;
        Pending {
            header,
            header_len,
            payload,
            tail,
        }
    }

    fn len(&self) -> usize {
        usize::from(self.header_len) + self.payload.len() + self.tail.len()
    }

    /// What is left of the frame after its first `written` bytes, as up to three slices.
    fn rest(&self, written: usize) -> [&[u8]; SLICES_PER_FRAME] {
        let parts = [
            &self.header[..usize::from(self.header_len)],
            &self.payload[..],
            &self.tail[..],
        ];
        let mut skip = written;
        parts.map(|part| {
            let taken = skip.min(part.len());
            skip -= taken;
            &part[taken..]
        })
    }
}

/// A server WebSocket: read with [`WebSocket::next`], data fed with [`WebSocket::feed`] and
/// written by [`WebSocket::flush`]. Over the upgraded connection, or any byte stream (tests).
pub struct WebSocket<S = TokioIo<Upgraded>> {
    stream: WebSocketStream<S>,
    /// Fed frames; those before `head` are written, and `written` bytes of the one at `head`.
    pending: Vec<Pending>,
    head: usize,
    written: usize,
    /// Bytes of data frames written so far (a flush's progress).
    sent: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    pub fn new(stream: WebSocketStream<S>) -> Self {
        WebSocket {
            stream,
            pending: Vec::new(),
            head: 0,
            written: 0,
            sent: 0,
        }
    }

    /// The next message from the peer (`None` once the stream ended).
    pub async fn next(&mut self) -> Option<Result<Message, tungstenite::Error>> {
        self.stream.next().await
    }

    /// Queues a data frame for the next flush.
    pub fn feed(&mut self, data: Data) {
        self.pending.push(Pending::new(data));
    }

    /// Queues a text frame whose payload is `head` then `tail` (a head many connections share,
    /// a tail of this one's), written from both without joining them.
    pub fn feed_text_parts(&mut self, head: Utf8Bytes, tail: Utf8Bytes) {
        let pending = Pending::with_tail(OpData::Text, head.into(), tail.into());
        self.pending.push(pending);
    }

    /// Writes everything fed (after what tungstenite owes) and flushes the stream.
    pub async fn flush(&mut self) -> Result<(), tungstenite::Error> {
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// [`WebSocket::flush`], given up when the peer takes no bytes for `timeout` (a peer
    /// that keeps reading, however slowly, is waited for).
    pub async fn flush_within(
        &mut self,
        timeout: Duration,
    ) -> Result<Result<(), tungstenite::Error>, Stalled> {
        loop {
            let before = self.sent;
            match tokio::time::timeout(timeout, self.flush()).await {
                Ok(flushed) => return Ok(flushed),
                Err(_) if self.sent == before => return Err(Stalled),
                Err(_) => continue,
            }
        }
    }

    /// Sends a control frame (ping, pong, close) after everything fed before it.
    pub async fn send(&mut self, message: Message) -> Result<(), tungstenite::Error> {
        self.flush().await?;
        self.stream.send(message).await
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), tungstenite::Error>> {
        // tungstenite's own bytes first: a pong or close reply it queued while reading.
        ready!(Pin::new(&mut self.stream).poll_flush(cx))?;
        while self.head < self.pending.len() {
            let wrote = ready!(self.poll_write_some(cx))?;
            if wrote == 0 {
                return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()));
            }
            self.advance(wrote);
        }
        // Given back, not kept for the next batch: an idle connection holds no buffer.
        self.pending = Vec::new();
        self.head = 0;
        self.written = 0;
        Pin::new(self.stream.get_mut())
            .poll_flush(cx)
            .map_err(Into::into)
    }

    /// One `writev` of the frames from `head` on.
    fn poll_write_some(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut slices = [IoSlice::new(&[]); SLICES_PER_FRAME * FRAMES_PER_WRITE];
        let mut count = 0;
        let mut written = self.written;
        for frame in self.pending[self.head..].iter().take(FRAMES_PER_WRITE) {
            for part in frame.rest(written) {
                if !part.is_empty() {
                    slices[count] = IoSlice::new(part);
                    count += 1;
                }
            }
            written = 0;
        }
        Pin::new(self.stream.get_mut()).poll_write_vectored(cx, &slices[..count])
    }

    /// Moves past `wrote` bytes of the fed frames.
    fn advance(&mut self, wrote: usize) {
        self.sent += wrote as u64;
        let mut left = wrote;
        while left > 0 && self.head < self.pending.len() {
            let rest = self.pending[self.head].len() - self.written;
            if left >= rest {
                left -= rest;
                // The written payload is released now, not at the end of the batch.
                let done = &mut self.pending[self.head];
                done.payload = Bytes::new();
                done.tail = Bytes::new();
                self.head += 1;
                self.written = 0;
            } else {
                self.written += left;
                left = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests;
