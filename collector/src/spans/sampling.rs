//! Adjusted counts from OpenTelemetry threshold sampling (`tracestate: ot=th:…`).

use super::text::{split_byte, split_once_byte};

/// Sampling weight (adjusted count) from a W3C `tracestate` value: `1/p` where
/// `p = 1 − th/2^56` and `th` is the hex threshold, right-padded to 14 digits. 1.0 when
/// absent or unparseable.
pub fn weight_from_tracestate(tracestate: &str) -> f64 {
    let Some(ot) = split_byte(tracestate, b',')
        .filter_map(|member| split_once_byte(member.trim(), b'='))
        .find(|(k, _)| *k == "ot")
        .map(|(_, v)| v)
    else {
        return 1.0;
    };
    let Some(th) = split_byte(ot, b';').find_map(|kv| kv.strip_prefix("th:")) else {
        return 1.0;
    };
    if th.is_empty() || th.len() > 14 || !th.bytes().all(|b| b.is_ascii_hexdigit()) {
        return 1.0;
    }
    // Right-padding with zeros to 14 digits is a shift of the parsed digits.
    let Ok(digits) = u64::from_str_radix(th, 16) else {
        return 1.0;
    };
    let threshold = digits << (4 * (14 - th.len()));
    let p = 1.0 - threshold as f64 / (1u64 << 56) as f64;
    if p <= 0.0 { 1.0 } else { 1.0 / p }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_give_adjusted_counts() {
        assert_eq!(weight_from_tracestate(""), 1.0);
        assert_eq!(weight_from_tracestate("ot=th:0"), 1.0);
        // th:8 = half the range rejected → p = 0.5 → weight 2.
        assert!((weight_from_tracestate("ot=th:8") - 2.0).abs() < 1e-9);
        // th:c → p = 0.25 → weight 4, with other vendors and fields around it.
        assert!((weight_from_tracestate("vendor=x, ot=rv:abc;th:c") - 4.0).abs() < 1e-9);
        assert_eq!(weight_from_tracestate("ot=th:zz"), 1.0);
        // Digits are right-padded: `08` is 0x08 followed by twelve zero digits.
        assert!((weight_from_tracestate("ot=th:08") - 32.0 / 31.0).abs() < 1e-9);
        assert!((weight_from_tracestate("ot=th:80000000000000") - 2.0).abs() < 1e-9);
        assert_eq!(weight_from_tracestate("ot=th:800000000000000"), 1.0);
    }
}
