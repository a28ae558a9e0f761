//! Go-style durations (`30s`, `5m`, `1h30m`, `1.5h`), the format Kubernetes users already write.

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    #[error("duration {0:?} is empty")]
    Empty(String),
    #[error("duration {input:?} is malformed at {rest:?}: expected a number followed by ms, s, m or h")]
    Malformed { input: String, rest: String },
    #[error("duration {0:?} is too long")]
    Overflow(String),
}

/// Parses one or more `<number><unit>` pairs; units `ms`, `s`, `m`, `h`; numbers may have a fraction.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    if input.is_empty() {
        return Err(DurationError::Empty(input.to_owned()));
    }
    let malformed = |rest: &str| DurationError::Malformed { input: input.to_owned(), rest: rest.to_owned() };
    let mut total = 0f64;
    let mut rest = input;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let value: f64 = number.parse().map_err(|_| malformed(rest))?;
        let (unit_seconds, unit_len) = if after.starts_with("ms") {
            (0.001, 2)
        } else if after.starts_with('s') {
            (1.0, 1)
        } else if after.starts_with('m') {
            (60.0, 1)
        } else if after.starts_with('h') {
            (3600.0, 1)
        } else {
            return Err(malformed(rest));
        };
        total += value * unit_seconds;
        rest = &after[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| DurationError::Overflow(input.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_style_durations() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn refuses_malformed_durations() {
        assert!(matches!(parse(""), Err(DurationError::Empty(_))));
        assert!(matches!(parse("-5m"), Err(DurationError::Malformed { .. })));
        assert!(matches!(parse("5"), Err(DurationError::Malformed { .. })));
        assert!(matches!(parse("5d"), Err(DurationError::Malformed { .. })));
        assert!(matches!(parse("m"), Err(DurationError::Malformed { .. })));
        assert!(matches!(parse("1..2s"), Err(DurationError::Malformed { .. })));
    }
}
