//! Timestamps in the contract's format: ISO-8601 UTC with milliseconds.

use time::OffsetDateTime;
use time::format_description::well_known::iso8601::{
    Config, EncodedConfig, Iso8601, TimePrecision,
};

const FORMAT: EncodedConfig = Config::DEFAULT
    .set_time_precision(TimePrecision::Second {
        decimal_digits: std::num::NonZeroU8::new(3),
    })
    .encode();

/// Now, e.g. `2026-11-26T23:00:00.000Z`.
pub fn iso_now() -> String {
    format_iso(OffsetDateTime::now_utc())
}

/// Formats a UTC instant as the contract's `ts`.
pub fn format_iso(at: OffsetDateTime) -> String {
    at.format(&Iso8601::<FORMAT>)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn shape() {
        let at = time::macros::datetime!(2026-11-26 23:00:00.5 UTC);
        assert_eq!(super::format_iso(at), "2026-11-26T23:00:00.500Z");
    }
}
