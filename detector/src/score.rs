//! Calibrated surprise: −ln p of what was observed under the baseline.

use statrs::distribution::{Beta, ContinuousCDF};
use statrs::function::beta::beta_reg;

/// Sufficient statistics of per-window counts (windows, Σx, Σx²).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    pub windows: f64,
    pub sum: f64,
    pub sum_sq: f64,
}

impl Moments {
    pub fn from_values(values: &[f64]) -> Self {
        let mut m = Self::default();
        for v in values {
            m.push(*v);
        }
        m
    }

    pub fn push(&mut self, v: f64) {
        self.windows += 1.0;
        self.sum += v;
        self.sum_sq += v * v;
    }
}

/// `P(X ≥ x)` for the next window's count under a negative binomial predictive fitted to
/// the history: mean and variance from the windows plus `prior_windows` pseudo-windows
/// at `prior_mean`, variance at least Poisson, inflated by `1 + 1/n` for the
/// uncertainty of the mean (this is exactly the Gamma–Poisson predictive when the
/// history is not over-dispersed). `x` may be fractional (surge-normalised counts).
pub fn nb_upper_tail(x: f64, history: &Moments, prior_mean: f64, prior_windows: f64) -> f64 {
    if !x.is_finite() || x <= 0.0 {
        return 1.0;
    }
    let n = history.windows.max(0.0) + prior_windows.max(1e-9);
    let mean =
        ((history.sum.max(0.0) + prior_mean.max(1e-9) * prior_windows.max(1e-9)) / n).max(1e-9);
    let second = (history.sum_sq.max(0.0) + prior_mean * prior_mean * prior_windows) / n;
    let var = (second - mean * mean).max(mean) * (1.0 + 1.0 / n);
    let r = mean * mean / (var - mean);
    let p = mean / var;
    // P(X ≥ x) = I_{1−p}(x, r), the continuous extension of the NB survival function.
    match beta_reg(x, r, 1.0 - p) {
        v if v.is_finite() => v.clamp(0.0, 1.0),
        _ => 1.0,
    }
}

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

/// `P(N ≥ k)` for `N ~ Poisson(lambda)`: the lower regularised gamma `P(k, λ)`.
pub fn poisson_upper_tail(k: f64, lambda: f64) -> f64 {
    if !k.is_finite() || k <= 0.0 {
        return 1.0;
    }
    // NaN or ≤ 0: no expected events, so any observed count is maximally surprising.
    if lambda.is_nan() || lambda <= 0.0 {
        return f64::MIN_POSITIVE;
    }
    match statrs::function::gamma::gamma_lr(k, lambda) {
        v if v.is_finite() => v.clamp(f64::MIN_POSITIVE, 1.0),
        _ => 1.0,
    }
}

/// The surprise of several independent findings together (Fisher's method on the
/// p-values `e^−score`): `−ln P(χ²₂ₙ ≥ 2S)` with `S` the sum of the scores, which is
/// `S − ln Σ_{k<n} S^k/k!`. One score gives itself back; many modest ones add up to more
/// than any of them.
pub fn combined_surprise(scores: &[f64]) -> f64 {
    let s: f64 = scores.iter().map(|x| x.clamp(0.0, 700.0)).sum();
    if scores.is_empty() || s <= 0.0 {
        return 0.0;
    }
    let ln_s = s.ln();
    let mut ln_fact = 0.0;
    let terms: Vec<f64> = (0..scores.len())
        .map(|k| {
            if k > 0 {
                ln_fact += (k as f64).ln();
            }
            k as f64 * ln_s - ln_fact
        })
        .collect();
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let ln_sum = max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln();
    (s - ln_sum).clamp(0.0, 700.0)
}

/// −ln p, finite and ≥ 0.
pub fn surprise(p: f64) -> f64 {
    if p.is_nan() || p <= 0.0 {
        return 700.0;
    }
    (-p.min(1.0).ln()).clamp(0.0, 700.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn poisson_tails_match_closed_forms() {
        // P(N ≥ 1) = 1 − e^−λ; P(N ≥ 2) = 1 − e^−λ(1 + λ).
        let l: f64 = 0.3;
        assert!((poisson_upper_tail(1.0, l) - (1.0 - (-l).exp())).abs() < 1e-12);
        assert!((poisson_upper_tail(2.0, l) - (1.0 - (-l).exp() * (1.0 + l))).abs() < 1e-12);
        assert_eq!(poisson_upper_tail(0.0, l), 1.0);
        assert!(poisson_upper_tail(6.0, 0.01) < 1e-14);
    }

    #[test]
    fn sources_that_rarely_add_callees_are_more_surprising() {
        let stable = surprise(p_novel(2.0, 10_000.0));
        let churny = surprise(p_novel(40.0, 100.0));
        assert!(stable > 8.0, "{stable}");
        assert!(churny < 1.5, "{churny}");
    }

    #[test]
    fn negative_binomial_tails_follow_the_history() {
        let steady = Moments::from_values(&[2.0; 60]);
        assert!(surprise(nb_upper_tail(12.0, &steady, 2.0, 1.0)) > 10.0);
        assert!(surprise(nb_upper_tail(3.0, &steady, 2.0, 1.0)) < 3.0);
        // A bursty history makes the same count far less surprising.
        let bursty = Moments::from_values(&[0.0, 1.0, 9.0, 2.0, 14.0, 0.0, 3.0, 11.0]);
        assert!(
            nb_upper_tail(12.0, &bursty, 2.0, 1.0) > 100.0 * nb_upper_tail(12.0, &steady, 2.0, 1.0)
        );
        // No history: the prior alone keeps one burst from looking impossible.
        assert!(surprise(nb_upper_tail(4.0, &Moments::default(), 2.0, 1.0)) < 4.0);
    }

    #[test]
    fn combined_surprise_is_fisher_s_method() {
        assert!((combined_surprise(&[4.0]) - 4.0).abs() < 1e-12);
        // Two p-values of e^−3: P(χ²₄ ≥ 12) = e^−6 (1 + 6).
        assert!((combined_surprise(&[3.0, 3.0]) - (6.0 - 7f64.ln())).abs() < 1e-12);
        assert_eq!(combined_surprise(&[]), 0.0);
        // Six new callees of score 4 each: far past any one of them.
        assert!(combined_surprise(&[4.0; 6]) > 12.0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn combined_surprise_rises_with_each_further_finding(s in 1.5f64..20.0, n in 1usize..20) {
            let fewer = combined_surprise(&vec![s; n]);
            let more = combined_surprise(&vec![s; n + 1]);
            prop_assert!(fewer.is_finite() && more.is_finite());
            prop_assert!(more > fewer, "{more} <= {fewer}");
        }

        #[test]
        fn scores_are_finite_non_negative_and_monotone(d in 0.0f64..1e4, n in 0.0f64..1e6, extra in 1.0f64..1e4) {
            let s = surprise(p_novel(d, n));
            prop_assert!(s.is_finite() && s >= 0.0);
            // More evidence without novelty → more surprise.
            prop_assert!(surprise(p_novel(d, n + extra)) >= s);
            let r = surprise(p_rare_upper(d.min(n), n));
            prop_assert!(r.is_finite() && r >= 0.0);
        }

        #[test]
        fn tail_scores_are_finite_and_monotone_in_the_count(
            values in proptest::collection::vec(0.0f64..500.0, 0..50),
            x in 0.0f64..1e4,
            more in 0.0f64..1e3,
            prior in 0.01f64..100.0,
        ) {
            let h = Moments::from_values(&values);
            let s = surprise(nb_upper_tail(x, &h, prior, 1.0));
            prop_assert!(s.is_finite() && s >= 0.0);
            prop_assert!(surprise(nb_upper_tail(x + more, &h, prior, 1.0)) >= s - 1e-9);
        }
    }
}
