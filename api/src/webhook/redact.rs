//! A webhook URL is a credential (a Slack incoming-webhook URL is the only thing needed
//! to post to the channel; others carry tokens in the path or query). Outside the config
//! it is only ever shown as [`redacted_url`]: scheme, host and port, plus a short digest
//! so two hooks on one host can be told apart. Errors that may quote the URL pass
//! through [`scrub`] before they are logged or stored.

use sha2::{Digest, Sha256};

/// Hex digits of the URL digest shown: enough to tell hooks apart, far too few to
/// confirm a guess of a random token.
const DIGEST_HEX: usize = 8;

/// `scheme://host[:port] (1a2b3c4d)`: the URL without user info, path, query or
/// fragment, and the first hex digits of its SHA-256.
pub fn redacted_url(url: &str) -> String {
    let digest = hex::encode(Sha256::digest(url.as_bytes()));
    let id = &digest[..DIGEST_HEX];
    match reqwest::Url::parse(url) {
        Ok(u) if u.host_str().is_some() => {
            let host = u.host_str().unwrap_or_default();
            match u.port() {
                Some(port) => format!("{}://{host}:{port} ({id})", u.scheme()),
                None => format!("{}://{host} ({id})", u.scheme()),
            }
        }
        _ => format!("unparsable url ({id})"),
    }
}

/// `text` with every secret part of `urls` replaced: whole URLs by their redacted form,
/// then any remaining path, query or user info of them by `…`.
pub fn scrub(text: &str, urls: &[&str]) -> String {
    let mut out = text.to_string();
    for url in urls.iter().filter(|u| !u.is_empty()) {
        out = out.replace(url, &redacted_url(url));
        let Ok(parsed) = reqwest::Url::parse(url) else {
            continue;
        };
        // The parsed form may differ from the configured one (a trailing slash, case,
        // percent-encoding), and error texts quote the parsed form.
        let normalised = parsed.as_str().to_string();
        out = out.replace(&normalised, &redacted_url(url));
        let mut secrets = vec![parsed.path().to_string()];
        secrets.extend(parsed.query().map(str::to_string));
        secrets.extend(parsed.password().map(str::to_string));
        if !parsed.username().is_empty() {
            secrets.push(parsed.username().to_string());
        }
        for secret in secrets.iter().filter(|s| s.len() > 1) {
            out = out.replace(secret.as_str(), "…");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLACK: &str = "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX";

    #[test]
    fn redaction_keeps_scheme_host_and_port_only() {
        let r = redacted_url(SLACK);
        assert!(r.starts_with("https://hooks.slack.com ("), "{r}");
        assert!(!r.contains("services") && !r.contains("XXXX"), "{r}");
        assert_eq!(r.len(), "https://hooks.slack.com (12345678)".len());
        let r = redacted_url("http://user:pw@127.0.0.1:9000/hook?token=abc");
        assert!(r.starts_with("http://127.0.0.1:9000 ("), "{r}");
        assert!(!r.contains("pw") && !r.contains("abc") && !r.contains("user"));
        assert!(redacted_url("not a url/secret").starts_with("unparsable url ("));
        // Two hooks on one host are told apart.
        assert_ne!(
            redacted_url("https://hooks.slack.com/services/a"),
            redacted_url("https://hooks.slack.com/services/b")
        );
        assert_eq!(redacted_url(SLACK), redacted_url(SLACK));
    }

    #[test]
    fn scrub_removes_the_url_and_its_secret_parts() {
        let text = format!(
            "error sending request for url ({SLACK}): also /services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"
        );
        let out = scrub(&text, &[SLACK]);
        assert!(!out.contains("XXXXXXXX"), "{out}");
        assert!(out.contains("https://hooks.slack.com ("), "{out}");
        let out = scrub(
            "failed for http://h:1/a?token=s3cr3t-token",
            &["http://h:1/a?token=s3cr3t-token"],
        );
        assert!(!out.contains("s3cr3t"), "{out}");
    }
}
