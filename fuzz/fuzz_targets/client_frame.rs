//! Fuzzes the client frame decoder in both encodings. Arbitrary bytes must never panic it, and
//! any frame it accepts must survive a round trip: re-encoded in either encoding, it decodes to
//! the same frame.

#![no_main]

use chat_shared::protocol::codec::{Encoding, decode_client_frame, encode};
use libfuzzer_sys::fuzz_target;

const ENCODINGS: [Encoding; 2] = [Encoding::Json, Encoding::MsgPack];

fuzz_target!(|bytes: &[u8]| {
    for encoding in ENCODINGS {
        let Ok(frame) = decode_client_frame(bytes, encoding) else {
            continue;
        };
        for again in ENCODINGS {
            let encoded = match encode(&frame, again) {
                Ok(encoded) => encoded,
                Err(error) => panic!("a decoded frame must encode ({again:?}): {error}"),
            };
            match decode_client_frame(&encoded, again) {
                Ok(decoded) => assert_eq!(decoded, frame, "round trip through {again:?}"),
                Err(error) => panic!("a re-encoded frame must decode ({again:?}): {error}"),
            }
        }
    }
});
