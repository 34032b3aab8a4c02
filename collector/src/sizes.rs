//! Byte counts (request and response body sizes) as telemetry reports them: span
//! attributes (ints, or strings as Envoy's tracer writes them) and access-log fields
//! (`%BYTES_RECEIVED%`, `%BYTES_SENT%`, where `-` means absent).
//!
//! The values are attacker-controlled. Anything that is not a plain non-negative whole
//! number is absent rather than guessed at: a negative, a fraction, a float string
//! (`1e3`), text, or a size beyond [`MAX_BYTES`]. The cap is there so the sums taken
//! downstream (per window, per edge, `SELECT sum(response_bytes)`) cannot be pushed to
//! overflow by a handful of forged records.

/// Largest size believed: no single request or response body in a mesh is a tebibyte,
/// and 2^24 such values still sum within a `u64`.
pub const MAX_BYTES: u64 = 1 << 40;

/// A size written as text: ASCII digits only (surrounding whitespace allowed).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    // `u64::from_str` also takes a leading `+`; a size never has a sign.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().filter(|n| *n <= MAX_BYTES)
}

/// A size sent as an integer attribute.
pub fn size_from_int(i: i64) -> Option<u64> {
    u64::try_from(i).ok().filter(|n| *n <= MAX_BYTES)
}

/// A size sent as a double (some exporters turn every JSON number into one): only a
/// finite whole number counts.
pub fn size_from_double(d: f64) -> Option<u64> {
    (d.is_finite() && d >= 0.0 && d.fract() == 0.0 && d <= MAX_BYTES as f64).then_some(d as u64)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn plain_numbers_parse_and_everything_else_is_absent() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size(" 3495 "), Some(3495));
        assert_eq!(parse_size(&MAX_BYTES.to_string()), Some(MAX_BYTES));
        for bad in [
            "",
            "-",
            "-1",
            "+5",
            "1.5",
            "1e3",
            "12kb",
            "0x10",
            "NaN",
            "١٢",
            "18446744073709551615",
            "99999999999999999999999999",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
        assert_eq!(parse_size(&(MAX_BYTES + 1).to_string()), None);
    }

    #[test]
    fn ints_and_doubles_keep_only_whole_non_negative_values() {
        assert_eq!(size_from_int(42), Some(42));
        assert_eq!(size_from_int(-1), None);
        assert_eq!(size_from_int(i64::MAX), None);
        assert_eq!(size_from_double(512.0), Some(512));
        for bad in [-1.0, 0.5, f64::NAN, f64::INFINITY, 1e300] {
            assert_eq!(size_from_double(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn any_text_parses_to_a_bounded_size_or_nothing(s in "\\PC{0,40}") {
            if let Some(n) = parse_size(&s) {
                prop_assert!(n <= MAX_BYTES);
                prop_assert!(s.trim().bytes().all(|b| b.is_ascii_digit()));
                prop_assert_eq!(s.trim().parse::<u128>().ok(), Some(u128::from(n)));
            }
        }

        #[test]
        fn every_size_in_range_round_trips(n in 0..=MAX_BYTES, pad in " {0,2}") {
            prop_assert_eq!(parse_size(&format!("{pad}{n}{pad}")), Some(n));
            prop_assert_eq!(size_from_int(n as i64), Some(n));
        }

        #[test]
        fn numeric_strings_out_of_range_or_signed_are_absent(n in any::<i128>()) {
            let expected = u64::try_from(n).ok().filter(|n| *n <= MAX_BYTES);
            prop_assert_eq!(parse_size(&n.to_string()), expected);
        }
    }
}
