//! Connection state recovery without server state, so any gateway can recover any client:
//! the private session id (`pid`) is signed for its user (HMAC-SHA256 with a key every gateway
//! shares), and the offset the client echoes back is the connection's per-guild log positions.
//! Pure: signing, checking, and encoding positions; the replay itself reads the guild logs.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use serde::ser::SerializeMap;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the MAC kept in a pid (128 bits).
const MAC_BYTES: usize = 16;
/// Longest offset accepted back from a client.
const MAX_OFFSET_CHARS: usize = 16 * 1024;
/// Most guilds an offset may name.
const MAX_OFFSET_GUILDS: usize = 512;

/// Per-guild positions: the last seq this connection was sent of each guild, in guild order.
/// A socket follows few guilds, so a sorted vector (a tenth of a map's node) holds them; in
/// JSON it is an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions(Vec<(Box<str>, u64)>);

impl Positions {
    pub fn new() -> Self {
        Positions(Vec::new())
    }

    /// The position of `guild`.
    pub fn get(&self, guild: &str) -> Option<u64> {
        self.find(guild).ok().map(|i| self.0[i].1)
    }

    /// `positions[guild] = seq`, allocating the key only for a guild not there yet.
    pub fn set(&mut self, guild: &str, seq: u64) {
        match self.find(guild) {
            Ok(i) => self.0[i].1 = seq,
            Err(i) => {
                // The first exactly (most sockets follow one guild); more grow as usual.
                if self.0.capacity() == 0 {
                    self.0.reserve_exact(1);
                }
                self.0.insert(i, (guild.into(), seq));
            }
        }
    }

    /// `positions[guild] = max(positions[guild], seq)`.
    pub fn raise(&mut self, guild: &str, seq: u64) {
        let at = self.get(guild).map_or(seq, |now| now.max(seq));
        self.set(guild, at);
    }

    /// (guild, position) in guild order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(guild, seq)| (&**guild, *seq))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn find(&self, guild: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(g, _)| (**g).cmp(guild))
    }
}

impl<G: AsRef<str>> FromIterator<(G, u64)> for Positions {
    /// The last position of a guild named twice wins.
    fn from_iter<I: IntoIterator<Item = (G, u64)>>(iter: I) -> Self {
        let mut all: Vec<(Box<str>, u64)> = iter
            .into_iter()
            .map(|(guild, seq)| (guild.as_ref().into(), seq))
            .collect();
        // Stable: of equal guilds the later stays after, and its seq is kept.
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = later.1;
            }
            same
        });
        all.shrink_to_fit();
        Positions(all)
    }
}

impl serde::Serialize for Positions {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (guild, seq) in self.iter() {
            map.serialize_entry(guild, &seq)?;
        }
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for Positions {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, u64>::deserialize(deserializer)?;
        Ok(map.into_iter().collect())
    }
}

/// The key that signs pids.
#[derive(Clone)]
pub struct PidKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for PidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PidKey(..)")
    }
}

impl PidKey {
    /// A key from a secret shared by every gateway (domain-separated from other uses of it).
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut key = b"socketio-pid\0".to_vec();
        key.extend_from_slice(secret);
        PidKey { key }
    }

    /// A key of this process only: recovery then works on this gateway alone.
    pub fn random() -> Self {
        let nonce = format!("{}{}", ulid::Ulid::new(), ulid::Ulid::new());
        Self::from_secret(nonce.as_bytes())
    }

    fn mac(&self, user_id: &str, nonce: &str) -> HmacSha256 {
        let mut mac = <HmacSha256 as hmac::digest::KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(user_id.as_bytes());
        mac.update(b"\0");
        mac.update(nonce.as_bytes());
        mac
    }

    /// A new pid for `user_id`: `nonce.mac`.
    pub fn issue(&self, user_id: &str) -> String {
        let nonce = ulid::Ulid::new().to_string();
        let tag = self.mac(user_id, &nonce).finalize().into_bytes();
        format!("{nonce}.{}", hex(&tag[..MAC_BYTES]))
    }

    /// Whether `pid` was issued (by any gateway sharing the key) to `user_id`.
    pub fn verify(&self, pid: &str, user_id: &str) -> bool {
        let Some((nonce, tag)) = pid.split_once('.') else {
            return false;
        };
        let Some(tag) = unhex(tag).filter(|t| t.len() == MAC_BYTES) else {
            return false;
        };
        if nonce.is_empty() || nonce.len() > 64 {
            return false;
        }
        self.mac(user_id, nonce).verify_truncated_left(&tag).is_ok()
    }
}

/// The offset string for these positions.
pub fn encode_offset(positions: &Positions) -> String {
    serde_json::to_string(positions).unwrap_or_default()
}

/// Positions from a client's offset; `None` when it is not one of ours.
pub fn decode_offset(offset: &str) -> Option<Positions> {
    if offset.len() > MAX_OFFSET_CHARS {
        return None;
    }
    let positions: Positions = serde_json::from_str(offset).ok()?;
    (positions.len() <= MAX_OFFSET_GUILDS).then_some(positions)
}

/// Whether missed messages may be replayed: the oldest one missed (none: nothing missed) is
/// no older than the recovery window.
pub fn within_window(oldest_missed: Option<SystemTime>, now: SystemTime, window: Duration) -> bool {
    match oldest_missed {
        None => true,
        Some(at) => now.duration_since(at).unwrap_or_default() <= window,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_verifies_for_its_user_on_any_gateway_with_the_key() {
        let a = PidKey::from_secret(b"shared");
        let b = PidKey::from_secret(b"shared");
        let pid = a.issue("u1");
        assert!(b.verify(&pid, "u1"));
        assert!(!b.verify(&pid, "u2"), "bound to its user");
        assert!(!PidKey::from_secret(b"other").verify(&pid, "u1"));
        assert!(!PidKey::random().verify(&pid, "u1"));
    }

    #[test]
    fn forged_and_malformed_pids_fail() {
        let key = PidKey::from_secret(b"k");
        let pid = key.issue("u1");
        let (nonce, tag) = pid.split_once('.').expect("dot");
        let table = [
            String::new(),
            "nodot".to_owned(),
            format!("{nonce}."),
            format!(".{tag}"),
            format!("{nonce}.{}", &tag[..tag.len() - 2]),
            format!("{nonce}.{}zz", &tag[..tag.len() - 2]),
            format!("X{nonce}.{tag}"),
            format!("{nonce}.{tag}00"),
            format!("{}.{tag}", "é".repeat(40)),
        ];
        for bad in table {
            assert!(!key.verify(&bad, "u1"), "{bad:?}");
        }
    }

    #[test]
    fn offsets_round_trip_and_bad_ones_are_refused() {
        let positions: Positions = [("g1", 42), ("g 2", 7)].into_iter().collect();
        assert_eq!(encode_offset(&positions), r#"{"g 2":7,"g1":42}"#);
        assert_eq!(decode_offset(&encode_offset(&positions)), Some(positions));
        for bad in ["", "42", "[1]", r#"{"g":-1}"#, r#"{"g":"1"}"#, "{"] {
            assert_eq!(decode_offset(bad), None, "{bad:?}");
        }
        let many: Positions = (0..=MAX_OFFSET_GUILDS)
            .map(|i| (i.to_string(), 1))
            .collect();
        assert_eq!(decode_offset(&encode_offset(&many)), None);
    }

    #[test]
    fn positions_stay_sorted_and_keep_one_entry_per_guild() {
        let mut positions = Positions::new();
        let table = [
            ("b", 3, "b=3"),
            ("a", 1, "a=1 b=3"),
            ("c", 9, "a=1 b=3 c=9"),
            ("b", 5, "a=1 b=5 c=9"),
        ];
        for (guild, seq, expected) in table {
            positions.set(guild, seq);
            let shown: Vec<String> = positions.iter().map(|(g, s)| format!("{g}={s}")).collect();
            assert_eq!(shown.join(" "), expected);
        }
        positions.raise("a", 0);
        positions.raise("c", 10);
        positions.raise("d", 2);
        assert_eq!(
            positions.iter().collect::<Vec<_>>(),
            [("a", 1), ("b", 5), ("c", 10), ("d", 2)]
        );
        assert_eq!(positions.get("b"), Some(5));
        assert_eq!(positions.get("z"), None);
        let twice: Positions = [("g", 1), ("g", 4)].into_iter().collect();
        assert_eq!(twice.iter().collect::<Vec<_>>(), [("g", 4)]);
    }

    #[test]
    fn the_window_bounds_the_oldest_missed_message() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let window = Duration::from_secs(120);
        let table = [
            (None, true),
            (Some(now - Duration::from_secs(119)), true),
            (Some(now - Duration::from_secs(120)), true),
            (Some(now - Duration::from_secs(121)), false),
            (Some(now + Duration::from_secs(5)), true),
        ];
        for (oldest, expected) in table {
            assert_eq!(within_window(oldest, now, window), expected, "{oldest:?}");
        }
    }
}
