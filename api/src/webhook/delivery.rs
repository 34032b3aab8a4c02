//! One HTTP attempt, its signatures, its classification, backoff with jitter, and the
//! per-destination rate limit.
//!
//! Signatures (see `docs/WEBHOOKS.md`): [`SIGNATURE_V1_HEADER`] carries
//! `v1=hex(HMAC-SHA256(secret, "{timestamp}.{delivery_id}.{body}"))` with the timestamp
//! in [`TIMESTAMP_HEADER`] and the id in [`DELIVERY_HEADER`], so a receiver can refuse a
//! captured request replayed later or under another id. [`SIGNATURE_HEADER`] keeps the
//! body-only signature of earlier releases for one more release (deprecated): it proves
//! the body came from eastwest but not when, so a copy can be replayed forever.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use super::redact::scrub;
use crate::config::{WebhookConfig, WebhookKind};

/// Longest `Retry-After` honoured; beyond it the receiver is treated as unavailable.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Deprecated: `sha256=<hex HMAC of the body>`; kept for one release, then removed.
pub const SIGNATURE_HEADER: &str = "X-Eastwest-Signature";
/// `v1=<hex HMAC of "{timestamp}.{delivery_id}.{body}">`.
pub const SIGNATURE_V1_HEADER: &str = "X-Eastwest-Signature-V1";
/// Unix seconds when the attempt was signed (each retry is signed anew).
pub const TIMESTAMP_HEADER: &str = "X-Eastwest-Timestamp";
/// The delivery id: fixed at enqueue time, the same on every retry.
pub const DELIVERY_HEADER: &str = "X-Eastwest-Delivery";
/// Longest error text kept from a failed request.
const MAX_ERROR_CHARS: usize = 500;

#[derive(Debug, Clone, PartialEq)]
pub enum AttemptResult {
    Delivered,
    /// Worth another try, possibly not before the receiver's `Retry-After`.
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
    /// The receiver refused the payload itself (4xx other than 408/429).
    Permanent {
        error: String,
    },
}

fn mac(secret: &str) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac accepts any key length")
}

/// Deprecated body-only signature: `sha256=<hex HMAC-SHA256 of body>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// `v1=<hex HMAC-SHA256 of "{timestamp}.{delivery_id}.{body}">`. The id is a UUID and the
/// timestamp digits, so the dots separate the three parts unambiguously.
pub fn signature_v1(secret: &str, timestamp: i64, delivery_id: &str, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(delivery_id.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

pub fn target_url(hook: &WebhookConfig) -> String {
    match hook.kind {
        WebhookKind::Alertmanager => format!("{}/api/v2/alerts", hook.url.trim_end_matches('/')),
        _ => hook.url.clone(),
    }
}

/// A failed request in words, without the URL (a credential): reqwest's own text minus
/// the URL, the causes below it, and a scrub for any part of the URL still quoted.
pub fn describe_error(error: reqwest::Error, hook: &WebhookConfig) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let error = error.without_url();
    let mut text = format!("{what}: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    let text = scrub(&text, &[&hook.url, &target_url(hook)]);
    super::sanitize::visible(&text, MAX_ERROR_CHARS)
}

pub async fn attempt(
    client: &reqwest::Client,
    hook: &WebhookConfig,
    delivery_id: &str,
    body: &str,
    timeout: Duration,
) -> AttemptResult {
    let timestamp = chrono::Utc::now().timestamp();
    let mut request = client
        .post(target_url(hook))
        .timeout(timeout)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(DELIVERY_HEADER, delivery_id)
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header("X-Eastwest-Event", "alert")
        .body(body.to_string());
    if let Some(secret) = hook.secret.as_deref().filter(|s| !s.is_empty()) {
        request = request.header(
            SIGNATURE_V1_HEADER,
            signature_v1(secret, timestamp, delivery_id, body.as_bytes()),
        );
        if hook.legacy_signature {
            request = request.header(SIGNATURE_HEADER, signature(secret, body.as_bytes()));
        }
    }
    match request.send().await {
        Err(e) => AttemptResult::Retry {
            error: describe_error(e, hook),
            retry_after: None,
        },
        Ok(response) => classify(
            response.status().as_u16(),
            response.headers().get(http::header::RETRY_AFTER),
        ),
    }
}

pub fn classify(status: u16, retry_after: Option<&http::HeaderValue>) -> AttemptResult {
    match status {
        200..=299 => AttemptResult::Delivered,
        408 | 425 | 429 | 500..=599 => AttemptResult::Retry {
            error: format!("receiver answered {status}"),
            retry_after: retry_after
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after),
        },
        _ => AttemptResult::Permanent {
            error: format!("receiver answered {status}"),
        },
    }
}

/// `Retry-After` as delay-seconds or an HTTP date; capped at [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let delay = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        (when.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// Exponential backoff after `attempts` failed tries, with "equal jitter": a random
/// point in the upper half of the step, so retries of many deliveries spread out.
pub fn backoff(hook: &WebhookConfig, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let step = hook
        .initial_backoff
        .saturating_mul(1u32 << exp)
        .min(hook.max_backoff);
    let half = step / 2;
    half + rand::rng().random_range(Duration::ZERO..=half)
}

/// Token bucket: `max_per_minute` burst, refilled continuously.
#[derive(Debug)]
pub struct RateLimiter {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn per_minute(max_per_minute: u32) -> Self {
        let capacity = f64::from(max_per_minute.max(1));
        Self {
            capacity,
            per_second: capacity / 60.0,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn v1_signature_covers_timestamp_id_and_body() {
        let base = signature_v1("k", 1_700_000_000, "id-1", b"{}");
        // The same HMAC over the documented string.
        let mut mac = mac("k");
        mac.update(b"1700000000.id-1.{}");
        assert_eq!(
            base,
            format!("v1={}", hex::encode(mac.finalize().into_bytes()))
        );
        assert_ne!(base, signature_v1("k", 1_700_000_001, "id-1", b"{}"));
        assert_ne!(base, signature_v1("k", 1_700_000_000, "id-2", b"{}"));
        assert_ne!(base, signature_v1("k", 1_700_000_000, "id-1", b"{ }"));
        assert_ne!(base, signature_v1("j", 1_700_000_000, "id-1", b"{}"));
    }

    #[tokio::test]
    async fn failed_requests_never_quote_the_url() {
        // A port nothing listens on: connection refused, with the URL in reqwest's text.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let hook = WebhookConfig {
            name: "slack".into(),
            kind: WebhookKind::Slack,
            url: format!("http://127.0.0.1:{port}/services/T1/B2/TOPSECRETTOKEN"),
            ..Default::default()
        };
        let client = reqwest::Client::new();
        let result = attempt(&client, &hook, "d1", "{}", Duration::from_secs(5)).await;
        let AttemptResult::Retry { error, .. } = result else {
            panic!("{result:?}");
        };
        assert!(!error.contains("TOPSECRETTOKEN"), "{error}");
        assert!(!error.contains("/services"), "{error}");
        assert!(error.starts_with("could not connect"), "{error}");
        // A raw reqwest error would have quoted it.
        let raw = client.post(&hook.url).send().await.unwrap_err().to_string();
        assert!(raw.contains("TOPSECRETTOKEN"), "{raw}");
    }

    #[test]
    fn classification_follows_status() {
        assert_eq!(classify(204, None), AttemptResult::Delivered);
        let ra = http::HeaderValue::from_static("7");
        assert_eq!(
            classify(429, Some(&ra)),
            AttemptResult::Retry {
                error: "receiver answered 429".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(matches!(
            classify(503, None),
            AttemptResult::Retry {
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(
            classify(400, None),
            AttemptResult::Permanent { .. }
        ));
    }

    #[test]
    fn retry_after_accepts_http_dates_and_caps() {
        let future = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        let d = parse_retry_after(&future).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn rate_limiter_allows_a_burst_then_waits() {
        let mut r = RateLimiter::per_minute(2);
        let t = Instant::now();
        assert!(r.try_take(t).is_ok());
        assert!(r.try_take(t).is_ok());
        let wait = r.try_take(t).unwrap_err();
        assert!(
            wait > Duration::from_secs(29) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert!(r.try_take(t + Duration::from_secs(31)).is_ok());
    }

    proptest! {
        #[test]
        fn backoff_grows_within_bounds(attempts in 1u32..100) {
            let hook = WebhookConfig::default();
            let d = backoff(&hook, attempts);
            prop_assert!(d <= hook.max_backoff);
            let step = hook.initial_backoff.saturating_mul(1u32 << attempts.saturating_sub(1).min(30)).min(hook.max_backoff);
            prop_assert!(d >= step / 2);
        }

        #[test]
        fn retry_after_never_panics(s in ".{0,40}") {
            let _ = parse_retry_after(&s);
        }
    }
}
