//! Fluent Bit-style value syntax: sizes, durations and booleans.
//!
//! Each parser returns what it expected on failure; [`super::ConfigError`] adds the key and
//! the value.

use std::time::Duration;

/// Parses a size: bytes, or a number with `K`, `M`, `G` (optionally followed by `B`),
/// in powers of 1024 as Fluent Bit counts them. `256M` is 268,435,456 bytes.
///
/// # Errors
///
/// What a size looks like, when `value` is not one or overflows.
pub fn size(value: &str) -> Result<u64, &'static str> {
    const EXPECTED: &str = "a size such as 512K, 256M or 1G";
    let text = value.trim().to_ascii_uppercase();
    let text = text.strip_suffix('B').unwrap_or(&text);
    let (number, multiplier) = match text.char_indices().last() {
        Some((at, 'K')) => (&text[..at], 1u64 << 10),
        Some((at, 'M')) => (&text[..at], 1 << 20),
        Some((at, 'G')) => (&text[..at], 1 << 30),
        Some((at, 'T')) => (&text[..at], 1 << 40),
        _ => (text, 1),
    };
    let number = number.trim();
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EXPECTED);
    }
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or(EXPECTED)
}

/// Parses a whole number within `range`.
///
/// # Errors
///
/// The range, when `value` is not a whole number in it.
pub fn whole(value: &str, range: std::ops::RangeInclusive<u64>) -> Result<u64, String> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| format!("a whole number from {} to {}", range.start(), range.end()))
}

/// Parses a duration: seconds, or a number with `ms`, `s`, `m`, `h` or `d`.
///
/// # Errors
///
/// What a duration looks like, when `value` is not one.
pub fn duration(value: &str) -> Result<Duration, &'static str> {
    const EXPECTED: &str = "a duration such as 30s, 10m or 1h";
    let text = value.trim().to_ascii_lowercase();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| EXPECTED)?;
    let millis_per_unit: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(EXPECTED),
    };
    number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or(EXPECTED)
}

/// Parses a boolean: `on`/`off`, `true`/`false`, `yes`/`no`, `1`/`0`, in any case.
///
/// # Errors
///
/// The accepted words, when `value` is none of them.
pub fn boolean(value: &str) -> Result<bool, &'static str> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err("on, off, true, false, yes or no"),
    }
}

/// Replaces every `${NAME}` in `value` with `lookup(NAME)`, or with nothing when the lookup
/// has no answer, as Fluent Bit does.
///
/// # Errors
///
/// When a `${` has no closing `}`.
pub fn expand_variables(
    value: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("'${{' in '{value}' has no closing '}}'"))?;
        out.push_str(&lookup(&after[..end]).unwrap_or_default());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_expand_from_the_lookup_or_to_nothing() {
        let lookup = |name: &str| (name == "ENV").then(|| "prod".to_owned());
        assert_eq!(
            expand_variables("a/${ENV}/${NONE}b", lookup),
            Ok("a/prod/b".into())
        );
        assert_eq!(
            expand_variables("no variables", lookup),
            Ok("no variables".into())
        );
        assert_eq!(
            expand_variables("x/${ENV", lookup),
            Err("'${' in 'x/${ENV' has no closing '}'".into())
        );
    }

    #[test]
    fn sizes_follow_fluent_bit_units() {
        for (text, bytes) in [
            ("0", 0),
            ("4096", 4096),
            ("512K", 512 << 10),
            ("512k", 512 << 10),
            ("256M", 256 << 20),
            ("256MB", 256 << 20),
            ("1G", 1 << 30),
            ("1gb", 1 << 30),
            (" 5M ", 5 << 20),
            ("2T", 2 << 40),
        ] {
            assert_eq!(size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn malformed_sizes_are_refused() {
        for text in [
            "",
            "M",
            "-1M",
            "1.5M",
            "12Q",
            "ten",
            "1 G B",
            "99999999999999999999",
        ] {
            assert!(size(text).is_err(), "{text:?} was accepted");
        }
        assert!(size("20000000000G").is_err(), "overflow must be refused");
    }

    #[test]
    fn durations_follow_fluent_bit_units() {
        for (text, expected) in [
            ("0", Duration::ZERO),
            ("45", Duration::from_secs(45)),
            ("250ms", Duration::from_millis(250)),
            ("30s", Duration::from_secs(30)),
            ("10m", Duration::from_secs(600)),
            ("1h", Duration::from_secs(3600)),
            ("1H", Duration::from_secs(3600)),
            ("2d", Duration::from_secs(172_800)),
        ] {
            assert_eq!(duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn malformed_durations_are_refused() {
        for text in ["", "m", "1.5h", "-1s", "10 minutes", "1w", "h1"] {
            assert!(duration(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn booleans_accept_fluent_bit_words() {
        for text in ["on", "ON", "true", "True", "yes", "1"] {
            assert_eq!(boolean(text), Ok(true), "{text}");
        }
        for text in ["off", "false", "No", "0"] {
            assert_eq!(boolean(text), Ok(false), "{text}");
        }
        for text in ["", "enabled", "2"] {
            assert!(boolean(text).is_err(), "{text:?} was accepted");
        }
    }
}
