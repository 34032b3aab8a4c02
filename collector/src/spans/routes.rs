//! Route templates from raw paths.

use std::borrow::Cow;
use std::cell::RefCell;

use eastwest_model::CompactString;

use super::attributes::MAX_FIELD_BYTES;
use super::paths;
use super::shared_names::{KeptSet, shared};
use super::text::{has_byte, split_once_byte};

/// Turns a concrete path into a template: the path is normalised first (see
/// [`super::paths`]; decoded slashes taken as separators, so no encoding hides a segment),
/// then segments that look like values become placeholders: numbers, UUIDs, long hex
/// strings and e-mail addresses as `{id}`, `{uuid}`, `{hex}`, `{email}`; free text (spaces,
/// punctuation, non-ASCII letters: `New%20York`) as `{name}`; long random-looking tokens
/// (`OLJCESPC7Z`, `V1StGXR8_Z5jdHi6B-myT`) as `{token}`; anything longer than
/// [`MAX_LITERAL_SEGMENT_BYTES`] as `{value}`. Idempotent, at most
/// [`MAX_FIELD_BYTES`] long.
pub fn template_path(path: &str) -> CompactString {
    template_segments(paths::segments(path))
}

/// A raw path's template ([`template_path`]) and, when it differs from the template, its
/// canonical spelling (segments as the callee's router sees them: a decoded `/` stays
/// inside its segment; what known templates are matched against), from one parse.
pub fn template_and_raw(path: &str) -> (CompactString, Option<CompactString>) {
    if let Some(template) = OWN_TEMPLATES.with_borrow(|known| known.get(path)) {
        return (template, None);
    }
    if let Some(segments) = paths::canonical_segments(path, MAX_FIELD_BYTES) {
        // Already in canonical spelling (most paths): nothing to decode or re-encode, and
        // a path without values is its own template, kept once.
        return match canonical_template(path, segments) {
            Some(template) => {
                let raw = (template != path).then(|| path.into());
                (template, raw)
            }
            None => {
                let template = shared(path);
                OWN_TEMPLATES.with_borrow_mut(|known| known.insert(&template));
                (template, None)
            }
        };
    }
    parsed_template_and_raw(path)
}

thread_local! {
    /// Repeated paths seen to be their own template (no segment looks like a value):
    /// most calls' paths, templated once instead of on every span.
    static OWN_TEMPLATES: RefCell<KeptSet> = const { RefCell::new(KeptSet::new()) };
}

/// [`template_and_raw`] by parsing the path: every spelling, canonical or not.
fn parsed_template_and_raw(path: &str) -> (CompactString, Option<CompactString>) {
    let segments = paths::segments(path);
    let raw = paths::render(&segments, MAX_FIELD_BYTES);
    let template = template_segments(segments);
    let raw = (raw != template).then_some(raw);
    (template, raw)
}

/// The template of a path in canonical spelling, from its segments, or `None` when that
/// is the path itself: segments render as written, so the path is copied up to its
/// first value and only what follows is rebuilt, cut where [`paths::render`] cuts.
fn canonical_template<'a>(
    path: &str,
    segments: impl Iterator<Item = &'a str>,
) -> Option<CompactString> {
    let mut template: Option<CompactString> = None;
    // Where the current segment's `/` is in `path`.
    let mut slash = 0;
    for segment in segments {
        let placeholder = template_segment(segment);
        if template.is_none() && placeholder.is_some() {
            let mut out = CompactString::with_capacity(path.len());
            out.push_str(&path[..slash]);
            template = Some(out);
        }
        if let Some(out) = &mut template {
            let written = placeholder.unwrap_or(segment);
            if !out.is_empty() && out.len() + 1 + written.len() > MAX_FIELD_BYTES {
                break;
            }
            out.push('/');
            out.push_str(written);
        }
        slash += segment.len() + 1;
    }
    template
}

fn template_segments(segments: Vec<Cow<'_, str>>) -> CompactString {
    let segments = paths::flatten(segments);
    paths::render(
        segments
            .iter()
            .map(|s| template_segment(s).unwrap_or(s.as_ref())),
        MAX_FIELD_BYTES,
    )
}

/// A route template as reported (`http.route`), normalised like a raw path so that a
/// template cannot spell a path differently from the calls that reach it.
pub fn normalize_template(route: &str) -> CompactString {
    paths::normalize_path(route, MAX_FIELD_BYTES)
}

/// Longest segment kept as written; a longer one is a value, whatever it looks like.
pub const MAX_LITERAL_SEGMENT_BYTES: usize = 64;
/// Shortest segment taken as a random token (shorter ones are words such as `v1beta1`).
const MIN_TOKEN_BYTES: usize = 10;

/// The placeholder a decoded segment becomes, if it looks like a value.
fn template_segment(segment: &str) -> Option<&'static str> {
    if segment.starts_with('{') && segment.ends_with('}') && segment.len() >= 2 {
        return None;
    }
    if segment.bytes().all(|b| b.is_ascii_digit()) {
        return Some("{id}");
    }
    if is_uuid(segment) {
        return Some("{uuid}");
    }
    if segment.len() >= 16 && segment.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some("{hex}");
    }
    if let Some((user, domain)) = split_once_byte(segment, b'@')
        && !user.is_empty()
        && has_byte(domain, b'.')
    {
        return Some("{email}");
    }
    if segment.len() > MAX_LITERAL_SEGMENT_BYTES {
        return Some("{value}");
    }
    if is_free_text(segment) {
        return Some("{name}");
    }
    if is_token(segment) {
        return Some("{token}");
    }
    None
}

/// Characters route literals do not hold but names and search terms do.
fn is_free_text(segment: &str) -> bool {
    segment.chars().any(|c| {
        !c.is_ascii()
            || c.is_whitespace()
            || c.is_control()
            || matches!(c, '\'' | '"' | ',' | '+' | '<' | '>' | '|' | '^' | '`')
    })
}

/// A long run of letters and digits that reads as random: digits mixed in, and either no
/// run of four lower-case letters (words have them: `oauth2callback`, `getUsersV2`) or at
/// least three digits.
fn is_token(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    if bytes.len() < MIN_TOKEN_BYTES
        || !bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
    {
        return false;
    }
    let digits = bytes.iter().filter(|b| b.is_ascii_digit()).count();
    if digits == 0 || !bytes.iter().any(u8::is_ascii_alphabetic) {
        return false;
    }
    let mut run = 0;
    let mut longest_lower_run = 0;
    for b in bytes {
        run = if b.is_ascii_lowercase() { run + 1 } else { 0 };
        longest_lower_run = longest_lower_run.max(run);
    }
    longest_lower_run < 4 || digits >= 3
}
fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn templates_ids_uuids_hex_and_emails() {
        assert_eq!(template_path("/users/42/orders"), "/users/{id}/orders");
        assert_eq!(
            template_path("/o/123e4567-e89b-12d3-a456-426614174000?x=1"),
            "/o/{uuid}"
        );
        assert_eq!(template_path("/blob/deadbeefdeadbeef00"), "/blob/{hex}");
        assert_eq!(template_path("/u/alice@example.com"), "/u/{email}");
        assert_eq!(template_path("/api/v1/cart"), "/api/v1/cart");
        assert_eq!(template_path(""), "/");
    }

    #[test]
    fn free_text_and_random_tokens_are_values_words_are_not() {
        assert_eq!(
            template_path("/api/v1/x/items/New%20York"),
            "/api/v1/x/items/{name}"
        );
        assert_eq!(
            template_path("/city/M%C3%BCnchen/weather"),
            "/city/{name}/weather"
        );
        assert_eq!(template_path("/q/a,b"), "/q/{name}");
        for token in [
            "OLJCESPC7Z",
            "V1StGXR8_Z5jdHi6B-myT",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        ] {
            assert_eq!(
                template_path(&format!("/p/{token}")),
                "/p/{token}",
                "{token}"
            );
        }
        for word in [
            "v1beta1",
            "oauth2callback",
            "getUsersV2",
            "hipstershop.CartService",
            "ListRecommendations",
            "meta-data",
            "security-credentials",
        ] {
            assert_eq!(
                template_path(&format!("/p/{word}")),
                format!("/p/{word}"),
                "{word}"
            );
        }
        assert_eq!(
            template_path(&format!("/p/{}", "x".repeat(80))),
            "/p/{value}"
        );
    }

    #[test]
    fn raw_spellings_of_a_sensitive_path_template_to_it() {
        for raw in [
            "/%61dmin/users",
            "/admin;x=1/users",
            "/a/../admin/users",
            "/x/..%2F..%2Fadmin/users",
        ] {
            assert_eq!(template_path(raw), "/admin/users", "{raw}");
        }
    }

    proptest! {
        #[test]
        fn the_canonical_fast_path_gives_what_parsing_gives(
            path in "(/([a-z0-9.;%?#{}@_ -]|%2[fF]|%41|\\.\\.){0,12}){0,8}/?",
            long in proptest::collection::vec("[a-z0-9]{1,80}", 0..8),
            ids in 0..200usize,
        ) {
            // Three times: a repeated path is answered from the kept own templates.
            for _ in 0..3 {
                prop_assert_eq!(template_and_raw(&path), parsed_template_and_raw(&path));
            }
            let long = format!("/{}", long.join("/"));
            for _ in 0..3 {
                prop_assert_eq!(template_and_raw(&long), parsed_template_and_raw(&long));
            }
            // Templates longer than their path are cut where rendering cuts them.
            let ids = "/7".repeat(ids);
            prop_assert_eq!(template_and_raw(&ids), parsed_template_and_raw(&ids));
        }

        #[test]
        fn template_path_is_idempotent_and_bounded(path in ".{0,600}") {
            let once = template_path(&path);
            prop_assert_eq!(template_path(&once), once.clone());
            prop_assert!(once.len() <= MAX_FIELD_BYTES);
        }

        /// Raw paths built from a template by filling its placeholders with values of
        /// every kind template back to it, however the values are spelled.
        #[test]
        fn filled_templates_template_back(
            literals in proptest::collection::vec("[a-z]{2,8}", 1..4),
            values in proptest::collection::vec(prop_oneof![
                (1u64..u64::MAX).prop_map(|n| (n.to_string(), "{id}")),
                "[A-Z][a-z]{2,6} [A-Z][a-z]{2,6}".prop_map(|s| (s, "{name}")),
                "[0-9a-f]{15}[a-f][0-9a-f]{0,24}".prop_map(|s| (s, "{hex}")),
                "[A-Z]{4}[0-9]{3}[A-Z]{3}".prop_map(|s| (s, "{token}")),
            ], 1..4),
            encode in any::<bool>(),
        ) {
            let mut raw = String::new();
            let mut expected = String::new();
            for (i, lit) in literals.iter().enumerate() {
                raw.push('/');
                raw.push_str(lit);
                expected.push('/');
                expected.push_str(lit);
                if let Some((value, placeholder)) = values.get(i) {
                    let spelled = if encode {
                        value.bytes().map(|b| format!("%{b:02X}")).collect()
                    } else {
                        value.replace(' ', "%20")
                    };
                    raw.push('/');
                    raw.push_str(&spelled);
                    expected.push('/');
                    expected.push_str(placeholder);
                }
            }
            prop_assert_eq!(template_path(&raw), expected);
        }
    }
}
