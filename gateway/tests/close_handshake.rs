//! The WebSocket closing handshake (RFC 6455 §7): a client's close frame is answered with a
//! close frame, and a client that breaks the protocol is closed with the code naming the
//! mistake (1002 protocol error, 1007 invalid UTF-8) instead of a bare TCP reset.

mod support;

use chat_shared::protocol::close_code;
use chat_shared::protocol::identity::Role;
use support::client::Client;
use support::{Embedded, Scope, user};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};

async fn connected(d: &Embedded) -> Client {
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let mut client = ann.connect(d, 0).await;
    client.round_trip().await;
    client
}

#[tokio::test]
async fn client_close_is_answered_with_its_code() {
    let d = Embedded::start().await;
    let mut client = connected(&d).await;
    let goodbye = CloseFrame {
        code: CloseCode::Away,
        reason: "bye".into(),
    };
    client.send_raw(Message::Close(Some(goodbye))).await;
    let reply = client.closed().await.expect("a close frame, not a reset");
    assert_eq!(u16::from(reply.code), 1001);
}

#[tokio::test]
async fn close_after_only_a_ping_is_answered() {
    let d = Embedded::start().await;
    let s = Scope::new();
    let g = s.guild("g");
    let ann = user(&d, &s.user_id("ann"), Role::Member, &[&g]).await;
    let mut client = ann.connect(&d, 0).await;
    client.send_raw(Message::Ping(b"hi".to_vec().into())).await;
    let goodbye = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    client.send_raw(Message::Close(Some(goodbye))).await;
    let reply = client.closed().await.expect("a close frame, not a reset");
    assert_eq!(u16::from(reply.code), 1000);
}

#[tokio::test]
async fn invalid_utf8_text_is_closed_with_1007() {
    let d = Embedded::start().await;
    let mut client = connected(&d).await;
    let bad = Frame::message(
        vec![0xce, 0xba, 0xe1, 0xbd, 0xff],
        OpCode::Data(Data::Text),
        true,
    );
    client.send_raw(Message::Frame(bad)).await;
    let reply = client.closed().await.expect("a close frame");
    assert_eq!(u16::from(reply.code), close_code::INVALID_DATA);
}

#[tokio::test]
async fn reserved_bits_are_closed_with_1002() {
    let d = Embedded::start().await;
    let mut client = connected(&d).await;
    let mut bad = Frame::message(b"{}".to_vec(), OpCode::Data(Data::Text), true);
    bad.header_mut().rsv2 = true;
    client.send_raw(Message::Frame(bad)).await;
    let reply = client.closed().await.expect("a close frame");
    assert_eq!(u16::from(reply.code), close_code::PROTOCOL_ERROR);
}

#[tokio::test]
async fn the_gateway_stays_up_after_protocol_errors() {
    let d = Embedded::start().await;
    let mut first = connected(&d).await;
    let bad = Frame::message(vec![0x80], OpCode::Data(Data::Continue), true);
    first.send_raw(Message::Frame(bad)).await;
    let reply = first.closed().await.expect("a close frame");
    assert_eq!(u16::from(reply.code), close_code::PROTOCOL_ERROR);
    connected(&d).await.round_trip().await;
}
