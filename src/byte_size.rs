//! Byte sizes as Kubernetes users write them (`2Gi`, `512Mi`, `1G`, or plain bytes), for
//! flags such as `--cache-max-bytes` whose chart value sits next to an `emptyDir` `sizeLimit`.

/// Why a size was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ByteSizeError {
    #[error("size {0:?} is malformed: expected bytes, or a whole number followed by Ki, Mi, Gi, Ti, k, M, G or T")]
    Malformed(String),
    #[error("size {0:?} is too large")]
    Overflow(String),
}

const UNITS: &[(&str, u64)] = &[
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
];

/// Parses `<whole number>[unit]`; binary units first, so `Mi` is never read as `M`.
pub fn parse(input: &str) -> Result<u64, ByteSizeError> {
    let malformed = || ByteSizeError::Malformed(input.to_owned());
    let digits = input.find(|c: char| !c.is_ascii_digit()).unwrap_or(input.len());
    let (number, unit) = input.split_at(digits);
    let number: u64 = number.parse().map_err(|_| malformed())?;
    let factor = if unit.is_empty() {
        1
    } else {
        UNITS.iter().find(|(name, _)| *name == unit).map(|(_, factor)| *factor).ok_or_else(malformed)?
    };
    number.checked_mul(factor).ok_or_else(|| ByteSizeError::Overflow(input.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let ok: &[(&str, u64)] = &[
            ("0", 0),
            ("1500", 1500),
            ("2Gi", 2 << 30),
            ("1536Mi", 1536 << 20),
            ("64Ki", 65_536),
            ("1Ti", 1 << 40),
            ("2G", 2_000_000_000),
            ("5M", 5_000_000),
            ("3k", 3_000),
        ];
        for (text, bytes) in ok {
            assert_eq!(parse(text), Ok(*bytes), "{text}");
        }
        for text in ["", "Gi", "2 Gi", "2gi", "1.5Gi", "-1", "2GiB", "2Ei"] {
            assert_eq!(parse(text), Err(ByteSizeError::Malformed(text.to_owned())), "{text}");
        }
        assert_eq!(parse("20000000Ti"), Err(ByteSizeError::Overflow("20000000Ti".to_owned())));
    }
}
