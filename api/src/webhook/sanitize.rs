//! Text from telemetry (workload names, namespaces, principals, routes, summaries built
//! from them) is attacker-controlled. Before it goes into a payload that a person reads
//! it is made to render as the text it is:
//!
//! * [`visible`]: characters that change how text is shown without being seen (C0/C1
//!   controls, newlines, bidi overrides, zero-width characters, Unicode tags) become
//!   U+FFFD, so a name that differs from a real one never looks like it (`ad\u{200B}min`
//!   shows as `ad�min`, not `admin`), and the length is capped.
//! * [`mrkdwn`]: Slack mrkdwn, which has no escape character: `& < >` become the entities
//!   Slack documents, and the formatting characters `* _ ~ `` ` become look-alikes, so
//!   nothing can close a code span, start bold or strike-through, or open a `<link>` or
//!   `<!channel>` mention.
//! * [`forwardable`]: Alertmanager and Falcosidekick forward labels and text to chat
//!   tools through templates that do not escape; `<` and `>` become `‹ ›`, which no chat
//!   markup reads as a link or a mention.

/// Stands in for every hidden character.
pub const REPLACEMENT: char = '\u{FFFD}';

/// Whether `c` is a control character, a line or paragraph separator, or a Unicode
/// format character (`Cf`): bidi overrides and isolates, zero-width spaces and joiners,
/// the BOM, soft hyphen, interlinear annotations and tag characters.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

/// `text` with hidden characters replaced and at most `max_chars` characters (the
/// last one `…` when cut).
pub fn visible(text: &str, max_chars: usize) -> String {
    let cleaned = text
        .chars()
        .map(|c| if is_hidden(c) { REPLACEMENT } else { c });
    truncate(cleaned, text.chars().count(), max_chars)
}

fn truncate(chars: impl Iterator<Item = char>, count: usize, max_chars: usize) -> String {
    if count <= max_chars {
        return chars.collect();
    }
    let mut out: String = chars.take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Caps already-safe text (e.g. an escaped string) at `max_chars` without cutting an
/// entity such as `&amp;` in half.
pub fn cap(text: &str, max_chars: usize) -> String {
    let count = text.chars().count();
    if count <= max_chars {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    // A cut entity would leave a bare `&`; drop the partial entity.
    if let Some(amp) = out.rfind('&')
        && !out[amp..].contains(';')
    {
        out.truncate(amp);
    }
    out.push('…');
    out
}

/// Slack mrkdwn for text that must read as plain text (see the module docs). Hidden
/// characters are replaced first, then the length capped, then escaped.
pub fn mrkdwn(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for c in visible(text, max_chars).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '*' => out.push('\u{2217}'), // ∗ asterisk operator
            '_' => out.push('\u{02CD}'), // ˍ modifier letter low macron
            '~' => out.push('\u{223C}'), // ∼ tilde operator
            '`' => out.push('\u{02CB}'), // ˋ modifier letter grave accent
            c => out.push(c),
        }
    }
    out
}

/// Text for Alertmanager labels and annotations and Falcosidekick fields (see the module
/// docs). Hidden characters replaced, `<` `>` neutralised, length capped.
pub fn forwardable(text: &str, max_chars: usize) -> String {
    visible(text, max_chars)
        .chars()
        .map(|c| match c {
            '<' => '\u{2039}',
            '>' => '\u{203A}',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Characters that start or end mrkdwn formatting, links or mentions.
    const MRKDWN_CONTROL: &[char] = &['<', '>', '*', '_', '~', '`'];

    fn hostile() -> impl Strategy<Value = String> {
        // Mostly mrkdwn syntax and hidden characters, some of anything.
        let piece = prop_oneof![
            Just("`".to_string()),
            Just("```".to_string()),
            Just("*".to_string()),
            Just("_".to_string()),
            Just("~".to_string()),
            Just("<".to_string()),
            Just(">".to_string()),
            Just("&".to_string()),
            Just("&lt;".to_string()),
            Just("<!channel>".to_string()),
            Just("<http://evil.example|ok>".to_string()),
            Just("\n> ".to_string()),
            Just("\u{202E}".to_string()),
            Just("\u{200B}".to_string()),
            Just("\u{E0041}".to_string()),
            "\\PC{0,4}",
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
    }

    #[test]
    fn hidden_characters_are_shown_not_dropped() {
        assert_eq!(visible("ad\u{200B}min", 100), "ad\u{FFFD}min");
        assert_eq!(
            visible("a\nb\tc\u{202E}d", 100),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}d"
        );
        assert_eq!(visible("abcdef", 4), "abc…");
        assert_eq!(visible("cart", 4), "cart");
    }

    #[test]
    fn mrkdwn_escapes_what_slack_parses() {
        assert_eq!(
            mrkdwn("`a` *b* _c_ ~d~ <!here> & x", 100),
            "ˋaˋ ∗b∗ ˍcˍ ∼d∼ &lt;!here&gt; &amp; x"
        );
        assert_eq!(forwardable("<!channel>\n", 100), "‹!channel›\u{FFFD}");
    }

    #[test]
    fn cap_never_leaves_half_an_entity() {
        assert_eq!(cap("ab&amp;cd", 5), "ab…");
        assert_eq!(cap("ab&amp;cd", 8), "ab&amp;…");
        assert_eq!(cap("short", 10), "short");
    }

    proptest! {
        #[test]
        fn mrkdwn_output_has_no_control_characters(s in hostile(), max in 1usize..64) {
            let out = mrkdwn(&s, max);
            prop_assert!(!out.chars().any(|c| MRKDWN_CONTROL.contains(&c)), "{out:?}");
            prop_assert!(!out.chars().any(is_hidden), "{out:?}");
            // Every `&` starts one of the three entities Slack decodes.
            for (i, _) in out.match_indices('&') {
                let rest = &out[i..];
                prop_assert!(
                    rest.starts_with("&amp;") || rest.starts_with("&lt;") || rest.starts_with("&gt;"),
                    "{out:?}"
                );
            }
            prop_assert!(visible(&s, max).chars().count() <= max);
        }

        #[test]
        fn capped_mrkdwn_stays_well_formed(s in hostile(), max in 1usize..64) {
            let out = cap(&mrkdwn(&s, 1000), max);
            prop_assert!(out.chars().count() <= max);
            for (i, _) in out.match_indices('&') {
                let rest = &out[i..];
                prop_assert!(
                    rest.starts_with("&amp;") || rest.starts_with("&lt;") || rest.starts_with("&gt;"),
                    "{out:?}"
                );
            }
        }

        #[test]
        fn forwardable_text_is_visible_and_bounded(s in hostile(), max in 1usize..64) {
            let out = forwardable(&s, max);
            prop_assert!(out.chars().count() <= max);
            prop_assert!(!out.contains('<') && !out.contains('>'), "{out:?}");
            prop_assert!(!out.chars().any(is_hidden), "{out:?}");
        }

        #[test]
        fn ordinary_names_pass_unchanged(s in "[a-z0-9][a-z0-9.-]{0,40}") {
            prop_assert_eq!(forwardable(&s, 256), s.clone());
            prop_assert_eq!(visible(&s, 256), s);
        }
    }
}
