//! What a load-test message carries so receivers can measure it without shared state:
//! the `messageId` is `{nonce}m{number}` (the run's global message number), the text starts
//! with the scheduled send time in nanoseconds since [`crate::clock::epoch`], and the `ref`
//! (`m{number}g{guild}w{0|1}`) tells an error frame which guild and window the message had.

/// The client `messageId` of message `number` in run `nonce`.
pub fn message_id(nonce: &str, number: u64) -> String {
    format!("{nonce}m{number}")
}

/// The message number in one of this run's message ids.
pub fn parse_message_id(nonce: &str, id: &str) -> Option<u64> {
    id.strip_prefix(nonce)?.strip_prefix('m')?.parse().ok()
}

/// A text of exactly `bytes` bytes (at least the timestamp) starting with the send time.
pub fn text(scheduled_ns: u64, bytes: usize) -> String {
    let mut text = format!("{scheduled_ns} ");
    while text.len() < bytes {
        text.push('x');
    }
    text
}

/// The scheduled send time at the start of a text.
pub fn parse_text(text: &str) -> Option<u64> {
    text.split(' ').next()?.parse().ok()
}

/// The `ref` of a send frame.
pub fn reference(number: u64, guild: usize, measured: bool) -> String {
    format!("m{number}g{guild}w{}", u8::from(measured))
}

/// Reads a `ref` made by [`reference`]: (number, guild, measured).
pub fn parse_reference(reference: &str) -> Option<(u64, usize, bool)> {
    let rest = reference.strip_prefix('m')?;
    let (number, rest) = rest.split_once('g')?;
    let (guild, measured) = rest.split_once('w')?;
    Some((number.parse().ok()?, guild.parse().ok()?, measured == "1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(parse_message_id("ab12", &message_id("ab12", 77)), Some(77));
        assert_eq!(parse_message_id("ab12", "zz9m1"), None);
        let t = text(123_456, 100);
        assert_eq!(t.len(), 100);
        assert_eq!(parse_text(&t), Some(123_456));
        assert_eq!(parse_reference(&reference(5, 3, true)), Some((5, 3, true)));
        assert_eq!(parse_reference("c1"), None);
        assert!(chat_shared::protocol::validate::is_valid_client_message_id(
            &message_id("ab12", 9)
        ));
    }
}
