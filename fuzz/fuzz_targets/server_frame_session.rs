//! Fuzzes what clients and gateways read back: the server frame decoder in both encodings (the
//! test client and the load generator use it) and the session document read from the store
//! (`session:{userId}` JSON, written by other systems too). Arbitrary bytes must never panic
//! them, and whatever decodes must survive a round trip unchanged.

#![no_main]

use chat_shared::protocol::codec::{Encoding, decode_server_frame, encode_server_frame};
use chat_shared::store::Session;
use libfuzzer_sys::fuzz_target;

const ENCODINGS: [Encoding; 2] = [Encoding::Json, Encoding::MsgPack];

fuzz_target!(|bytes: &[u8]| {
    server_frames(bytes);
    session(bytes);
});

fn server_frames(bytes: &[u8]) {
    for encoding in ENCODINGS {
        let Ok(frame) = decode_server_frame(bytes, encoding) else {
            continue;
        };
        for again in ENCODINGS {
            let encoded = match encode_server_frame(&frame, again) {
                Ok(encoded) => encoded,
                Err(error) => panic!("a decoded server frame must encode ({again:?}): {error}"),
            };
            match decode_server_frame(&encoded, again) {
                Ok(decoded) => assert_eq!(decoded, frame, "round trip through {again:?}"),
                Err(error) => panic!("a re-encoded server frame must decode ({again:?}): {error}"),
            }
        }
    }
}

fn session(bytes: &[u8]) {
    let Ok(session) = serde_json::from_slice::<Session>(bytes) else {
        return;
    };
    let ids = session.guild_ids();
    assert!(ids.len() <= session.guilds.len());
    let json = match serde_json::to_vec(&session) {
        Ok(json) => json,
        Err(error) => panic!("a parsed session must serialise: {error}"),
    };
    match serde_json::from_slice::<Session>(&json) {
        Ok(again) => {
            assert_eq!(again.guilds, session.guilds, "session guilds round trip");
            let extra = |s: &Session| serde_json::Value::Object(s.extra.clone());
            assert!(
                same_json(&extra(&again), &extra(&session)),
                "other session fields round trip: {again:?} != {session:?}"
            );
        }
        Err(error) => panic!("a serialised session must parse: {error}"),
    }
}

/// Equal JSON values, except that floats may differ in their last bits: serde_json (without
/// its `float_roundtrip` feature, which the workspace does not enable) may parse a float one
/// ULP off, e.g. an integer too large for u64 (found by this target, see docs/hardening.md).
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs()),
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}
