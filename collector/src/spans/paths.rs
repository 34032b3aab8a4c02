//! Raw request paths → one canonical spelling, so that every way of writing a path the
//! callee routes alike (`/%61dmin`, `/admin;x=1`, `/a/../admin`, `//admin`) reads as the
//! path it routes to, and sensitive patterns and templates see that path.
//!
//! Normalisation: query and fragment dropped; each segment cut at its first `;` (matrix
//! parameters, as Tomcat and Spring strip them before routing) and percent-decoded;
//! empty segments (repeated or trailing slashes) and `.` dropped; `..` removes the
//! segment before it and never climbs above the root. A decoded `/` stays inside its
//! segment (Envoy and most routers keep `%2F` as data); rendering re-encodes it, with
//! `%`, `?`, `#`, `;`, controls and non-ASCII bytes, as upper-case escapes, so the
//! rendered path normalises to itself.

use std::borrow::Cow;

use eastwest_model::CompactString;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use super::text::{SplitByte, before_any, has_byte, split_byte};

/// What rendering escapes: whatever would change the segment's meaning when read again.
const SEGMENT_ESCAPES: &AsciiSet = &CONTROLS
    .add(b'%')
    .add(b'/')
    .add(b'?')
    .add(b'#')
    .add(b';')
    .add(b' ');

/// The decoded segments of `path`, normalised as the module docs say.
pub fn segments(path: &str) -> Vec<Cow<'_, str>> {
    let path = before_any(path, b"?#");
    let mut out: Vec<Cow<'_, str>> = Vec::new();
    for raw in split_byte(path, b'/') {
        let raw = before_any(raw, b";");
        let decoded = percent_decode_str(raw).decode_utf8_lossy();
        push_segment(&mut out, decoded);
    }
    out
}

fn push_segment<'a>(out: &mut Vec<Cow<'a, str>>, segment: Cow<'a, str>) {
    match &*segment {
        "" | "." => {}
        ".." => {
            out.pop();
        }
        _ => out.push(segment),
    }
}

/// Segments with every decoded `/` taken as a separator, dot segments resolved again:
/// the path as a server that decodes before routing (nginx, some frameworks) sees it, so
/// `/files/..%2F..%2Fadmin` cannot hide an admin path from the sensitive patterns.
pub fn flatten<'a>(segments: Vec<Cow<'a, str>>) -> Vec<Cow<'a, str>> {
    if !segments.iter().any(|s| has_byte(s, b'/')) {
        return segments;
    }
    let mut out = Vec::with_capacity(segments.len() + 2);
    for segment in segments {
        if has_byte(&segment, b'/') {
            for part in split_byte(&segment, b'/') {
                push_segment(&mut out, Cow::Owned(part.to_string()));
            }
        } else {
            push_segment(&mut out, segment);
        }
    }
    out
}

/// One segment as written in a rendered path.
pub fn render_segment(segment: &str) -> Cow<'_, str> {
    utf8_percent_encode(segment, SEGMENT_ESCAPES).into()
}

/// `/a/b` from segments (`/` for none), stopping before the segment that would take the
/// path past `max_bytes`: cut at a segment boundary, the result still normalises to
/// itself.
pub fn render<S: AsRef<str>>(
    segments: impl IntoIterator<Item = S>,
    max_bytes: usize,
) -> CompactString {
    let mut out = CompactString::default();
    for segment in segments {
        let rendered = render_segment(segment.as_ref());
        if !out.is_empty() && out.len() + 1 + rendered.len() > max_bytes {
            break;
        }
        out.push('/');
        out.push_str(&rendered);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The segments of `path` when it is already in canonical spelling and at most
/// `max_bytes` long (it then renders to itself): starts with `/`, no empty, `.` or `..`
/// segment, and only printable ASCII that is neither escaped nor cut by [`segments`]
/// (`%`, `?`, `#`, `;`). `None` otherwise, including for `/` itself.
pub fn canonical_segments(path: &str, max_bytes: usize) -> Option<SplitByte<'_>> {
    let rest = path.strip_prefix('/')?;
    if path.len() > max_bytes
        || !path
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'%' | b'?' | b'#' | b';'))
        || split_byte(rest, b'/').any(|s| matches!(s, "" | "." | ".."))
    {
        return None;
    }
    Some(split_byte(rest, b'/'))
}

/// The canonical spelling of a raw path (segments kept as the callee's router sees them).
pub fn normalize_path(path: &str, max_bytes: usize) -> CompactString {
    render(segments(path), max_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn norm(path: &str) -> CompactString {
        normalize_path(path, 256)
    }

    fn flat(path: &str) -> CompactString {
        render(flatten(segments(path)), 256)
    }

    #[test]
    fn evasions_of_one_path_read_as_that_path() {
        for raw in [
            "/admin/users",
            "/%61dmin/users",
            "/%61%64%6D%69%6E/users",
            "/admin;x=1/users",
            "/admin/users;jsessionid=abc",
            "/a/../admin/users",
            "/a/b/../../admin/users",
            "/../../admin/users",
            "/./admin/./users/",
            "//admin///users",
            "/admin/users?x=1#frag",
            "/%2e%2e/admin/users",
            "/x/%2E%2E/admin/users",
            "admin/users",
        ] {
            assert_eq!(norm(raw), "/admin/users", "{raw}");
        }
    }

    #[test]
    fn escapes_that_are_data_stay_data_in_one_canonical_case() {
        assert_eq!(norm("/items/New%20York"), "/items/New%20York");
        assert_eq!(norm("/items/New York"), "/items/New%20York");
        assert_eq!(norm("/f/a%2fb"), "/f/a%2Fb");
        assert_eq!(
            norm("/f/a%3Bb"),
            "/f/a%3Bb",
            "an encoded ; is not a parameter"
        );
        assert_eq!(norm("/f/50%25"), "/f/50%25");
        assert_eq!(
            norm("/f/%zz"),
            "/f/%25zz",
            "an invalid escape is a literal %"
        );
        assert_eq!(norm("/city/M%c3%bcnchen"), "/city/M%C3%BCnchen");
        assert_eq!(norm(""), "/");
        assert_eq!(norm("/"), "/");
        assert_eq!(norm("/.."), "/");
    }

    #[test]
    fn decoded_slashes_split_only_when_flattened() {
        assert_eq!(norm("/files/..%2F..%2Fadmin"), "/files/..%2F..%2Fadmin");
        assert_eq!(flat("/files/..%2F..%2Fadmin"), "/admin");
        assert_eq!(flat("/p/group%2Fname/files"), "/p/group/name/files");
    }

    #[test]
    fn long_paths_are_cut_between_segments() {
        let raw = format!("/{}/{}", "a".repeat(200), "b".repeat(100));
        assert_eq!(normalize_path(&raw, 256), format!("/{}", "a".repeat(200)));
    }

    proptest! {
        /// Normalising twice changes nothing, flattened or not, and the result is a
        /// rooted path without empty, `.` or `..` segments, query or fragment.
        #[test]
        fn normalisation_is_idempotent_and_canonical(
            path in "(/|%2[eEfF]|%[0-9a-fA-F]{2}|\\.|;|[a-zA-Z0-9 ?#%_~-]|é){0,40}",
        ) {
            let once = norm(&path);
            prop_assert_eq!(norm(&once), once.clone());
            prop_assert!(once.starts_with('/'));
            prop_assert!(!once.contains("//") && !once.contains('?') && !once.contains('#'));
            prop_assert!(once == "/" || !once.ends_with('/'));
            for s in once.split('/').skip(1) {
                prop_assert!(s != "." && s != ".." && !s.contains(';'), "{s} in {once}");
            }
            let flat_once = flat(&path);
            prop_assert_eq!(flat(&flat_once), flat_once.clone());
            prop_assert!(flat_once.len() <= 256 || flat_once.matches('/').count() == 1);
        }

        /// Percent-encoding any unreserved character, or adding matrix parameters and
        /// dot segments, does not change the normalised path.
        #[test]
        fn equivalent_spellings_normalise_alike(
            segs in proptest::collection::vec("[a-zA-Z0-9_~-]{1,8}", 1..6),
            encode in proptest::collection::vec(any::<bool>(), 6),
            junk in proptest::collection::vec(0u8..4, 6),
        ) {
            let plain = format!("/{}", segs.join("/"));
            let mut spelled = String::new();
            for (i, s) in segs.iter().enumerate() {
                match junk[i] {
                    1 => spelled.push_str("/./"),
                    2 => spelled.push_str("/zz/.."),
                    3 => spelled.push_str("//"),
                    _ => {}
                }
                spelled.push('/');
                if encode[i] {
                    for b in s.bytes() {
                        spelled.push_str(&format!("%{b:02x}"));
                    }
                } else {
                    spelled.push_str(s);
                }
                if junk[i] == 1 {
                    spelled.push_str(";v=1");
                }
            }
            prop_assert_eq!(norm(&spelled), plain);
        }
    }
}
