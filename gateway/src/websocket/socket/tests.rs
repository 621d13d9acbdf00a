//! The direct writer against a real tokio-tungstenite client over an in-memory pipe: every
//! length format, order with control frames, partial writes and a flush cancelled midway.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::DuplexStream;
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::protocol::Role;

use super::{Data, Stalled, WebSocket};

async fn pair(pipe_bytes: usize) -> (WebSocket<DuplexStream>, WebSocketStream<DuplexStream>) {
    let (server, client) = tokio::io::duplex(pipe_bytes);
    let server = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
    let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
    (WebSocket::new(server), client)
}

fn text(len: usize, fill: char) -> Data {
    Data::Text(fill.to_string().repeat(len).into())
}

async fn read(client: &mut WebSocketStream<DuplexStream>) -> Message {
    tokio::time::timeout(Duration::from_secs(5), client.next())
        .await
        .expect("a message in time")
        .expect("stream open")
        .expect("a valid frame")
}

#[tokio::test]
async fn frames_of_every_length_format_arrive_whole_and_in_order() {
    let (mut server, mut client) = pair(1 << 20).await;
    let lengths = [0, 1, 125, 126, 127, 65_535, 65_536, 70_000];
    for (i, len) in lengths.iter().enumerate() {
        server.feed(text(*len, char::from(b'a' + i as u8)));
    }
    server.feed(Data::Binary(vec![1, 2, 3].into()));
    server.flush().await.expect("flushed");
    for (i, len) in lengths.iter().enumerate() {
        let expected = char::from(b'a' + i as u8).to_string().repeat(*len);
        assert_eq!(
            read(&mut client).await,
            Message::Text(expected.into()),
            "length {len}"
        );
    }
    assert_eq!(
        read(&mut client).await,
        Message::Binary(vec![1, 2, 3].into())
    );
}

#[tokio::test]
async fn control_frames_keep_their_place_between_data_frames() {
    let (mut server, mut client) = pair(1 << 16).await;
    server.feed(text(10, 'x'));
    server
        .send(Message::Ping(vec![7].into()))
        .await
        .expect("ping sent");
    server.feed(text(10, 'y'));
    server.flush().await.expect("flushed");
    assert_eq!(
        read(&mut client).await,
        Message::Text("x".repeat(10).into())
    );
    assert_eq!(read(&mut client).await, Message::Ping(vec![7].into()));
    assert_eq!(
        read(&mut client).await,
        Message::Text("y".repeat(10).into())
    );
}

#[tokio::test]
async fn the_pong_tungstenite_owes_goes_out_before_the_next_data() {
    let (mut server, mut client) = pair(1 << 16).await;
    client
        .send(Message::Ping(vec![9].into()))
        .await
        .expect("ping");
    assert_eq!(
        server.next().await.and_then(Result::ok),
        Some(Message::Ping(vec![9].into()))
    );
    server.feed(text(5, 'z'));
    server.flush().await.expect("flushed");
    assert_eq!(read(&mut client).await, Message::Pong(vec![9].into()));
    assert_eq!(read(&mut client).await, Message::Text("z".repeat(5).into()));
}

#[tokio::test]
async fn a_flush_cut_short_resumes_where_it_was_and_the_close_follows_whole_frames() {
    // A pipe of 100 bytes: 50 frames of 300 bytes take many partial writes.
    let (mut server, mut client) = pair(100).await;
    for i in 0..50 {
        server.feed(text(300, char::from(b'A' + (i % 26) as u8)));
    }
    // Nobody reads: the flush stalls and is given up (the future is dropped midway).
    let stalled = server.flush_within(Duration::from_millis(50)).await;
    assert_eq!(stalled.err(), Some(Stalled));
    let reading = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(Ok(message)) = client.next().await {
            let close = matches!(message, Message::Close(_));
            got.push(message);
            if close {
                break;
            }
        }
        got
    });
    server.send(Message::Close(None)).await.expect("close sent");
    let got = reading.await.expect("reader");
    assert_eq!(got.len(), 51, "every frame, then the close");
    for (i, message) in got[..50].iter().enumerate() {
        let expected = char::from(b'A' + (i % 26) as u8).to_string().repeat(300);
        assert_eq!(message, &Message::Text(expected.into()), "frame {i}");
    }
    assert!(matches!(got[50], Message::Close(_)));
}

#[tokio::test]
async fn a_frame_in_two_parts_arrives_as_one_text_through_partial_writes() {
    // 7-byte pipe: the header, the head and the tail are each cut across writes.
    let (mut server, mut client) = pair(7).await;
    let cases = [
        ("", ""),
        ("head", ""),
        ("", "tail"),
        ("42[\"a\",{}", ",\"{}\"]"),
    ];
    let long = "h".repeat(300);
    let reading = tokio::spawn(async move {
        let mut got = Vec::new();
        for _ in 0..cases.len() + 1 {
            got.push(read(&mut client).await);
        }
        got
    });
    for (head, tail) in cases {
        server.feed_text_parts(head.into(), tail.into());
    }
    server.feed_text_parts(long.clone().into(), "t".repeat(200).into());
    server.flush().await.expect("flushed");
    let got = reading.await.expect("reader");
    for (i, (head, tail)) in cases.iter().enumerate() {
        assert_eq!(
            got[i],
            Message::Text(format!("{head}{tail}").into()),
            "case {i}"
        );
    }
    let joined = format!("{long}{}", "t".repeat(200));
    assert_eq!(got[cases.len()], Message::Text(joined.into()));
}

#[tokio::test]
async fn a_slow_reader_is_waited_for_while_it_takes_bytes() {
    let (mut server, mut client) = pair(64).await;
    for _ in 0..20 {
        server.feed(text(200, 's'));
    }
    let reading = tokio::spawn(async move {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            read(&mut client).await;
        }
    });
    // 20 reads 5 ms apart take ~100 ms: longer than the timeout, but never stalled for it.
    let flushed = server.flush_within(Duration::from_millis(40)).await;
    assert!(
        matches!(flushed, Ok(Ok(()))),
        "not stalled: {:?}",
        flushed.err()
    );
    reading.await.expect("reader");
}

#[tokio::test]
async fn an_idle_socket_keeps_no_buffer() {
    let (mut server, mut client) = pair(1 << 16).await;
    server.feed(text(5000, 'q'));
    server.flush().await.expect("flushed");
    assert_eq!(server.pending.capacity(), 0);
    read(&mut client).await;
}
