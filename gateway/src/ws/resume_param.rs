//! The handshake's resume positions: `GET /ws?resume=g1:42,g2:17` names, for each guild, the
//! last `seq` the client has, so the connection replays those guilds before any of their live
//! messages and sends everything else live at once (no wait for a first frame).
//!
//! Rules: comma-separated `guildId:seq` items (the guild id is everything before the last
//! `:`, so it may itself contain one; the query string is percent-decoded first); `seq` a
//! decimal `u64`; an empty value names nothing. A malformed item, a guild named twice, or more
//! than [`MAX_POSITIONS`] items refuse the handshake with 400 `bad_request`. Guilds the user
//! may not read are answered after `hello` exactly as in a `resume` frame (`error`
//! `forbidden_guild` with the `guildId`), so the rules stay those of the frame.

/// Guilds one handshake may name.
pub const MAX_POSITIONS: usize = 256;

/// Why a `resume` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadResume {
    #[error("resume item {0:?} is not guildId:seq")]
    Malformed(String),
    #[error("guild {0:?} named twice")]
    Repeated(String),
    #[error("more than {MAX_POSITIONS} guilds")]
    TooMany,
}

/// The positions of a `resume` query value, in the order given.
pub fn parse(value: Option<&str>) -> Result<Vec<(String, u64)>, BadResume> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut positions: Vec<(String, u64)> = Vec::new();
    for item in value.split(',') {
        if positions.len() == MAX_POSITIONS {
            return Err(BadResume::TooMany);
        }
        let (guild, seq) = item
            .rsplit_once(':')
            .filter(|(g, _)| !g.is_empty())
            .and_then(|(g, s)| Some((g, s.parse::<u64>().ok()?)))
            .ok_or_else(|| BadResume::Malformed(item.chars().take(80).collect()))?;
        if positions.iter().any(|(g, _)| g == guild) {
            return Err(BadResume::Repeated(guild.to_owned()));
        }
        positions.push((guild.to_owned(), seq));
    }
    Ok(positions)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = Result<Vec<(String, u64)>, BadResume>;

    fn ok(list: &[(&str, u64)]) -> Parsed {
        Ok(list.iter().map(|(g, s)| (g.to_string(), *s)).collect())
    }

    #[test]
    fn parses_the_handshake_positions() {
        let many = (0..=MAX_POSITIONS)
            .map(|i| format!("g{i}:1"))
            .collect::<Vec<_>>()
            .join(",");
        let cases: Vec<(Option<&str>, Parsed)> = vec![
            (None, ok(&[])),
            (Some(""), ok(&[])),
            (Some("g1:42"), ok(&[("g1", 42)])),
            (Some("g1:42,g2:0"), ok(&[("g1", 42), ("g2", 0)])),
            (Some("team:a:7"), ok(&[("team:a", 7)])),
            (Some("g1"), Err(BadResume::Malformed("g1".into()))),
            (Some(":4"), Err(BadResume::Malformed(":4".into()))),
            (Some("g1:-1"), Err(BadResume::Malformed("g1:-1".into()))),
            (Some("g1:x"), Err(BadResume::Malformed("g1:x".into()))),
            (Some("g1:1,"), Err(BadResume::Malformed("".into()))),
            (
                Some("g1:99999999999999999999"),
                Err(BadResume::Malformed("g1:99999999999999999999".into())),
            ),
            (Some("g1:1,g1:2"), Err(BadResume::Repeated("g1".into()))),
            (Some(many.as_str()), Err(BadResume::TooMany)),
        ];
        for (value, expected) in cases {
            assert_eq!(parse(value), expected, "{value:?}");
        }
    }
}
