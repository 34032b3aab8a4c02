//! The policy YAML reader under arbitrary input, for `cargo fuzz` (`fuzz/`, target
//! `policy_yaml`) and, in smoke mode, the unit tests: parsing never panics, whatever
//! parses compiles into a [`PolicySet`] or is refused with an error, evaluation never
//! panics, and what parses survives a round trip (write → read → equal).

use eastwest_model::Protocol;

use crate::{CallView, PolicySet, parse_yaml, to_yaml};

pub fn policy_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(docs) = parse_yaml(text) else {
        return;
    };
    if let Ok(set) = PolicySet::new(&docs) {
        let call = CallView {
            source_service: "frontend".into(),
            source_namespace: Some("shop".into()),
            principal: Some("spiffe://cluster.local/ns/shop/sa/frontend".into()),
            destination_service: "users".into(),
            destination_namespace: Some("shop".into()),
            protocol: Protocol::Http,
            method: "GET".into(),
            route: "/users/{id}".into(),
            port: Some(8080),
        };
        let _ = set.verdict(&call);
        let _ = PolicySet::rules(&docs);
    }
    let yaml = to_yaml(&[], &docs).expect("parsed documents serialise");
    let back = parse_yaml(&yaml).expect("written documents parse");
    assert_eq!(back, docs, "round trip changed the documents:\n{yaml}");
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::policy_yaml;
    use crate::{Format, compile, testdata};

    /// Seeds: every dialect's generated documents, also as `fuzz/corpus/policy_yaml/`
    /// when `EASTWEST_WRITE_FUZZ_CORPUS=1`.
    #[test]
    fn seeds_pass_and_can_be_written_as_the_corpus() {
        let rules = testdata::shop();
        for format in Format::ALL {
            let yaml = compile(&rules, format).to_yaml(&rules).unwrap();
            policy_yaml(yaml.as_bytes());
            if std::env::var_os("EASTWEST_WRITE_FUZZ_CORPUS").is_some() {
                let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/policy_yaml");
                std::fs::create_dir_all(dir).unwrap();
                std::fs::write(format!("{dir}/{}.yaml", format.as_str()), yaml).unwrap();
            }
        }
        for text in [
            "",
            "---\n---\n",
            "kind: List\nitems: []\n",
            "a: [",
            "\u{0}",
            "kind: List\nitems: 3\n",
        ] {
            policy_yaml(text.as_bytes());
        }
    }

    proptest! {
        #[test]
        fn mutated_policies_never_panic(cut in 0usize..4000, insert in "[ -~\n]{0,12}") {
            let rules = testdata::shop();
            let yaml = compile(&rules, Format::Istio).to_yaml(&rules).unwrap();
            let at = yaml.char_indices().map(|(i, _)| i).nth(cut % yaml.chars().count()).unwrap_or(0);
            let mutated = format!("{}{insert}{}", &yaml[..at], &yaml[at..]);
            policy_yaml(mutated.as_bytes());
        }
    }
}
