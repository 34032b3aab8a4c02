//! Splitting on ASCII bytes, for the short strings span reading takes apart for every
//! span (path segments, Istio cluster names, hosts, `tracestate`): `str::split` with a
//! `char` searches with `memchr`, whose setup costs more than scanning strings this
//! short. An ASCII byte is never inside a multi-byte character, so every cut is on a
//! character boundary.

/// `s.split(sep)` for an ASCII `sep`.
pub fn split_byte(s: &str, sep: u8) -> SplitByte<'_> {
    debug_assert!(sep.is_ascii());
    SplitByte { rest: Some(s), sep }
}

/// `s.split_once(sep)` for an ASCII `sep`.
pub fn split_once_byte(s: &str, sep: u8) -> Option<(&str, &str)> {
    debug_assert!(sep.is_ascii());
    let i = s.bytes().position(|b| b == sep)?;
    Some((&s[..i], &s[i + 1..]))
}

/// `s.rsplit_once(sep)` for an ASCII `sep`.
pub fn rsplit_once_byte(s: &str, sep: u8) -> Option<(&str, &str)> {
    debug_assert!(sep.is_ascii());
    let i = s.bytes().rposition(|b| b == sep)?;
    Some((&s[..i], &s[i + 1..]))
}

/// `s` up to its first byte in `seps` (all ASCII), or all of it.
pub fn before_any<'a>(s: &'a str, seps: &[u8]) -> &'a str {
    debug_assert!(seps.is_ascii());
    match s.bytes().position(|b| seps.contains(&b)) {
        Some(i) => &s[..i],
        None => s,
    }
}

/// Whether `s` holds the ASCII byte `b`.
pub fn has_byte(s: &str, b: u8) -> bool {
    s.as_bytes().contains(&b)
}

/// The pieces of a string between one ASCII separator, as [`str::split`] gives them.
#[derive(Debug, Clone)]
pub struct SplitByte<'a> {
    rest: Option<&'a str>,
    sep: u8,
}

impl<'a> Iterator for SplitByte<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match split_once_byte(rest, self.sep) {
            Some((piece, after)) => {
                self.rest = Some(after);
                Some(piece)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn splits_as_str_does(s in "[a-c/|.:;@é]{0,24}", sep in prop::sample::select(vec![b'/', b'|', b'.', b':', b'@'])) {
            let c = char::from(sep);
            prop_assert_eq!(split_byte(&s, sep).collect::<Vec<_>>(), s.split(c).collect::<Vec<_>>());
            prop_assert_eq!(split_once_byte(&s, sep), s.split_once(c));
            prop_assert_eq!(rsplit_once_byte(&s, sep), s.rsplit_once(c));
            prop_assert_eq!(before_any(&s, &[sep, b';']), s.split([c, ';']).next().unwrap_or(""));
            prop_assert_eq!(has_byte(&s, sep), s.contains(c));
        }
    }
}
