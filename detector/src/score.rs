//! Calibrated surprise: −ln p of what was observed under the baseline.

use statrs::distribution::{Beta, ContinuousCDF};

/// Probability that the next event is a *new* kind, after `events` events that showed
/// `distinct` kinds: the Good–Turing / Dirichlet-process estimate `(distinct + 1) /
/// (events + 2)` (with add-one smoothing so an empty history gives ½). A source that
/// adds callees often keeps a high probability of novelty and scores low.
pub fn p_novel(distinct: f64, events: f64) -> f64 {
    ((distinct.max(0.0) + 1.0) / (events.max(0.0) + 2.0)).clamp(f64::MIN_POSITIVE, 1.0)
}

/// Upper bound (95%) of the probability of an outcome seen `k` times in `n` trials,
/// from the Beta(k + 1, n − k + 1) posterior: conservative for short histories.
pub fn p_rare_upper(k: f64, n: f64) -> f64 {
    let (k, n) = (k.max(0.0), n.max(k.max(0.0)));
    match Beta::new(k + 1.0, n - k + 1.0) {
        Ok(beta) => beta.inverse_cdf(0.95).clamp(f64::MIN_POSITIVE, 1.0),
        Err(_) => 1.0,
    }
}

/// −ln p, finite and ≥ 0.
pub fn surprise(p: f64) -> f64 {
    if !(p > 0.0) {
        return 700.0;
    }
    (-p.min(1.0).ln()).clamp(0.0, 700.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sources_that_rarely_add_callees_are_more_surprising() {
        let stable = surprise(p_novel(2.0, 10_000.0));
        let churny = surprise(p_novel(40.0, 100.0));
        assert!(stable > 8.0, "{stable}");
        assert!(churny < 1.5, "{churny}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn scores_are_finite_non_negative_and_monotone(d in 0.0f64..1e4, n in 0.0f64..1e6, extra in 1.0f64..1e4) {
            let s = surprise(p_novel(d, n));
            prop_assert!(s.is_finite() && s >= 0.0);
            // More evidence without novelty → more surprise.
            prop_assert!(surprise(p_novel(d, n + extra)) >= s);
            let r = surprise(p_rare_upper(d.min(n), n));
            prop_assert!(r.is_finite() && r >= 0.0);
        }
    }
}
