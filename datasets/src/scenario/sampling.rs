//! Consistent probability sampling as in the OpenTelemetry specification
//! ("TraceState: Probability Sampling"): a trace is kept when its 56-bit randomness
//! value `R` (the last 7 bytes of the trace id, as for a W3C `random` trace id) is at
//! least the rejection threshold `T = (1 − ratio) · 2^56`; kept spans carry
//! `tracestate: ot=th:T` (14 hex digits, trailing zeros removed, `0` for 100 %) so a
//! consumer weights each span by the adjusted count `2^56 / (2^56 − T)` ≈ `1/ratio`.
//! With ratio < 1 the randomness is also written explicitly (`rv:`).

const MAX: u64 = 1 << 56;

#[derive(Debug, Clone)]
pub(crate) struct Sampler {
    threshold: u64,
    th: String,
}

/// The `th` value for a threshold: 14 hex digits, trailing zeros removed, `0` for zero.
pub(crate) fn th_hex(threshold: u64) -> String {
    if threshold == 0 {
        return "0".into();
    }
    let s = format!("{threshold:014x}");
    s.trim_end_matches('0').to_string()
}

/// The rejection threshold for keeping `ratio` of the traces.
pub(crate) fn threshold_for(ratio: f64) -> u64 {
    // 2^56 − round(ratio · 2^56): exact for the small ratios where it matters.
    let keep = (ratio.clamp(0.0, 1.0) * MAX as f64).round() as u64;
    MAX.saturating_sub(keep.max(1))
}

/// The 56-bit randomness of a trace id (its last 7 bytes).
pub(crate) fn randomness(trace: &[u8]) -> u64 {
    trace[9..16]
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

impl Sampler {
    pub fn new(ratio: f64) -> Self {
        let threshold = threshold_for(ratio);
        // The threshold as written: a consumer reads back exactly this `th` value.
        let th = th_hex(threshold);
        Self { threshold, th }
    }

    pub fn trace_state(&self, trace: &[u8]) -> String {
        if self.threshold == 0 {
            "ot=th:0".into()
        } else {
            format!("ot=rv:{:014x};th:{}", randomness(trace), self.th)
        }
    }

    pub fn keep(&self, trace: &[u8]) -> bool {
        randomness(trace) >= self.threshold
    }

    /// Makes a trace id pass the threshold (injected traces are always kept), staying
    /// a deterministic function of the id it had.
    pub fn force_keep(&self, trace: &mut [u8]) {
        let r = randomness(trace);
        if r >= self.threshold {
            return;
        }
        let kept = self.threshold + r % (MAX - self.threshold);
        for (i, b) in trace[9..16].iter_mut().enumerate() {
            *b = (kept >> (8 * (6 - i))) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_spec_hex() {
        assert_eq!(th_hex(threshold_for(1.0)), "0");
        assert_eq!(th_hex(threshold_for(0.5)), "8");
        assert_eq!(th_hex(threshold_for(0.25)), "c");
        assert_eq!(th_hex(threshold_for(0.1)), "e6666666666666");
        let s = Sampler::new(0.25);
        let mut t = [0u8; 16];
        assert!(!s.keep(&t));
        s.force_keep(&mut t);
        assert!(s.keep(&t));
        assert_eq!(s.trace_state(&t), "ot=rv:c0000000000000;th:c");
    }
}
