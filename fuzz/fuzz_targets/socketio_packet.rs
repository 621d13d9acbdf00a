//! Fuzzes the Socket.IO endpoint's packet decoder (gateway/src/socketio/packet.rs, included by
//! path: it needs only serde_json and thiserror): any bytes, as a polling payload, split into
//! Engine.IO packets and each decoded, and each decoded as a Socket.IO packet. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../gateway/src/socketio/packet.rs"]
#[allow(dead_code)]
mod packet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for part in packet::split_payload(text) {
        if let Ok(packet::EnginePacket::Message(payload)) = packet::decode_engine(part) {
            let _ = packet::decode_sio(payload);
        }
        let _ = packet::decode_sio(part);
    }
});
