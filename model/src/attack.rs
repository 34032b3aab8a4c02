//! The MITRE ATT&CK (Enterprise) techniques each alert evidences, shown with every alert
//! (its JSON carries them as `attack`), in webhooks and on the dashboard.
//!
//! The mapping is keyed by alert kind: a kind added later adds one line to [`BY_KIND`]
//! (an empty list where the kind evidences no technique, like an alert storm); a test
//! holds that every kind is listed. A `sensitive_endpoint` alert adds the technique of
//! the sensitive pattern it matched ([`BY_PATTERN`], keyed by the built-in pattern
//! names), since "called an admin route" and "read the cloud metadata API" are different
//! steps of an attack. docs/ATTACK.md has the table with the reasons.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Alert, AlertKind};

/// One ATT&CK technique or sub-technique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Technique {
    /// `T1046`, `T1552.005`.
    pub id: &'static str,
    pub name: &'static str,
    /// The tactic this evidence points at (a technique may serve several).
    pub tactic: &'static str,
}

impl Technique {
    /// The technique's page on attack.mitre.org (`T1552.005` → `…/T1552/005/`).
    pub fn url(&self) -> String {
        format!(
            "https://attack.mitre.org/techniques/{}/",
            self.id.replace('.', "/")
        )
    }
}

const fn t(id: &'static str, name: &'static str, tactic: &'static str) -> Technique {
    Technique { id, name, tactic }
}

pub const REMOTE_SERVICES: Technique = t("T1021", "Remote Services", "Lateral Movement");
pub const EXPLOIT_REMOTE_SERVICES: Technique = t(
    "T1210",
    "Exploitation of Remote Services",
    "Lateral Movement",
);
pub const NETWORK_SERVICE_DISCOVERY: Technique =
    t("T1046", "Network Service Discovery", "Discovery");
pub const DATA_FROM_REPOSITORIES: Technique =
    t("T1213", "Data from Information Repositories", "Collection");
pub const IMPAIR_DEFENSES: Technique = t("T1562", "Impair Defenses", "Defense Evasion");
pub const VALID_ACCOUNTS: Technique = t("T1078", "Valid Accounts", "Defense Evasion");
pub const MASQUERADING: Technique = t("T1036", "Masquerading", "Defense Evasion");
pub const CLOUD_METADATA_API: Technique = t(
    "T1552.005",
    "Unsecured Credentials: Cloud Instance Metadata API",
    "Credential Access",
);
pub const CONTAINER_API: Technique = t(
    "T1552.007",
    "Unsecured Credentials: Container API",
    "Credential Access",
);
pub const CONTAINER_ADMIN_COMMAND: Technique =
    t("T1609", "Container Administration Command", "Execution");
pub const CONTAINER_DISCOVERY: Technique =
    t("T1613", "Container and Resource Discovery", "Discovery");
pub const AUTOMATED_COLLECTION: Technique = t("T1119", "Automated Collection", "Collection");
pub const DEPLOY_CONTAINER: Technique = t("T1610", "Deploy Container", "Execution");
pub const SYSTEM_INFORMATION_DISCOVERY: Technique =
    t("T1082", "System Information Discovery", "Discovery");

/// Every alert kind (by its JSON name) and what it evidences by itself.
pub const BY_KIND: &[(&str, &[Technique])] = &[
    // A workload calls a service it never called: it uses the mesh to reach another host.
    ("new_edge", &[REMOTE_SERVICES]),
    // A known edge, a method/route never used on it: the caller's existing trust is used
    // to reach functions of the callee it never needed.
    ("new_endpoint", &[EXPLOIT_REMOTE_SERVICES]),
    // Admin, debug, actuator, migration routes; the pattern adds its own (BY_PATTERN).
    ("sensitive_endpoint", &[EXPLOIT_REMOTE_SERVICES]),
    // Many services never called, in one window: a scan of the mesh.
    ("fan_out", &[NETWORK_SERVICE_DISCOVERY]),
    // One edge carrying far more calls than it ever did: bulk reading of a data service.
    ("rate_spike", &[DATA_FROM_REPOSITORIES]),
    // A known call made from a request that never leads there: the caller's position is
    // used outside the flows it serves.
    ("context_anomaly", &[REMOTE_SERVICES]),
    // Bursts of 401/403/404 from one source: guessing routes and services.
    ("probing", &[NETWORK_SERVICE_DISCOVERY]),
    // Plaintext where mTLS was the rule: the sidecar (and its policy) was bypassed.
    ("plaintext", &[IMPAIR_DEFENSES]),
    // A principal that is not the workload's own: borrowed credentials or a forged name.
    ("identity_mismatch", &[VALID_ACCOUNTS, MASQUERADING]),
    // A workload (and identity) never seen before starts calling services: a deployed
    // container is how an attacker with cluster access gets a foothold of their own.
    ("new_workload", &[DEPLOY_CONTAINER]),
    // A known endpoint moving far more bytes per call: data taken through a normal path.
    (
        "volume_spike",
        &[DATA_FROM_REPOSITORIES, AUTOMATED_COLLECTION],
    ),
    // A count of findings over the alert budget: about the budget, not one technique.
    ("alert_storm", &[]),
];

/// Built-in sensitive pattern names (`[detector] sensitive_patterns`) and what a call
/// matching them evidences beyond the sensitive call itself.
pub const BY_PATTERN: &[(&str, &[Technique])] = &[
    ("cloud-metadata", &[CLOUD_METADATA_API]),
    ("kubernetes-secrets", &[CONTAINER_API]),
    ("etcd", &[CONTAINER_API]),
    ("kubernetes-pod-exec", &[CONTAINER_ADMIN_COMMAND]),
    ("kubelet", &[CONTAINER_ADMIN_COMMAND]),
    ("kubernetes-api", &[CONTAINER_DISCOVERY]),
    ("kubernetes-rbac-review", &[CONTAINER_DISCOVERY]),
    ("istiod", &[CONTAINER_DISCOVERY]),
    ("debug", &[SYSTEM_INFORMATION_DISCOVERY]),
    ("metrics", &[SYSTEM_INFORMATION_DISCOVERY]),
    ("envoy-admin", &[SYSTEM_INFORMATION_DISCOVERY]),
    ("grpc-admin", &[NETWORK_SERVICE_DISCOVERY]),
];

/// What alerts of `kind` evidence by themselves (empty for a kind not listed).
pub fn techniques_of_kind(kind: AlertKind) -> &'static [Technique] {
    BY_KIND
        .iter()
        .find(|(k, _)| *k == kind.as_str())
        .map_or(&[], |(_, list)| *list)
}

/// What this alert evidences: its kind's techniques, a sensitive pattern's, none for a
/// rollout notice (an info alert folding a new version's changes: expected, not evidence).
pub fn techniques(alert: &Alert) -> Vec<Technique> {
    if alert.evidence.contains_key("rollout_version") {
        return Vec::new();
    }
    let mut out = techniques_of_kind(alert.kind).to_vec();
    if alert.kind == AlertKind::SensitiveEndpoint
        && let Some(pattern) = alert.evidence.get("pattern").and_then(|p| p.as_str())
        && let Some((_, extra)) = BY_PATTERN.iter().find(|(p, _)| *p == pattern)
    {
        for technique in *extra {
            if !out.contains(technique) {
                out.push(*technique);
            }
        }
    }
    out
}

/// A technique as the alert JSON carries it (with its page).
#[derive(Serialize)]
struct TechniqueJson {
    #[serde(flatten)]
    technique: Technique,
    url: String,
}

/// The alert's own fields, through the derive that `remote = "Self"` in alert.rs turns
/// into an inherent function.
struct AlertFields<'a>(&'a Alert);

impl Serialize for AlertFields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Alert::serialize(self.0, serializer)
    }
}

/// The alert's fields in their order, then `attack`, derived from them: every place that
/// writes an alert (API, SSE, webhooks, the store) carries the tags without adding them.
#[derive(Serialize)]
struct AlertJson<'a> {
    #[serde(flatten)]
    alert: AlertFields<'a>,
    attack: Vec<TechniqueJson>,
}

impl Serialize for Alert {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let attack = techniques(self)
            .into_iter()
            .map(|technique| TechniqueJson {
                url: technique.url(),
                technique,
            })
            .collect();
        AlertJson {
            alert: AlertFields(self),
            attack,
        }
        .serialize(serializer)
    }
}

/// `attack` is derived, so reading an alert ignores it (unknown fields are ignored).
impl<'de> Deserialize<'de> for Alert {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Alert::deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use serde_json::json;

    use super::*;
    use crate::{AlertState, Severity, Workload};

    fn alert(kind: AlertKind, evidence: serde_json::Value) -> Alert {
        Alert {
            id: "a".into(),
            kind,
            severity: Severity::High,
            score: 9.0,
            source: Workload::new("cart").in_namespace("shop"),
            destination: Some(Workload::new("users").in_namespace("shop")),
            method: Some("GET".into()),
            route: Some("/".into()),
            entry: None,
            first_seen: DateTime::UNIX_EPOCH,
            last_seen: DateTime::UNIX_EPOCH,
            count: 1,
            trace_ids: vec![],
            incident_id: None,
            summary: "s".into(),
            evidence: evidence.as_object().cloned().unwrap_or_default(),
            state: AlertState::Open,
        }
    }

    #[test]
    fn every_kind_is_listed_once() {
        for kind in AlertKind::ALL {
            let n = BY_KIND.iter().filter(|(k, _)| *k == kind.as_str()).count();
            assert_eq!(n, 1, "{kind:?} must have one line in attack::BY_KIND");
        }
    }

    /// docs/ATTACK.md is the table users read: each kind's and pattern's row names
    /// exactly the techniques of the code.
    #[test]
    fn the_documented_table_matches_the_code() {
        let doc = include_str!("../../docs/ATTACK.md");
        let rows: Vec<Vec<&str>> = doc
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| l.split('|').map(str::trim).collect())
            .collect();
        let ids_in = |cell: &str| -> Vec<String> {
            cell.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
                .filter(|w| {
                    w.len() >= 5
                        && w.starts_with('T')
                        && w[1..5].chars().all(|c| c.is_ascii_digit())
                })
                .map(String::from)
                .collect()
        };
        let row_of = |name: &str| {
            rows.iter()
                .find(|r| r[1].split(", ").any(|n| n == format!("`{name}`")))
                .unwrap_or_else(|| panic!("docs/ATTACK.md has no row for {name}"))
        };
        for (kind, list) in BY_KIND {
            let want: Vec<String> = list.iter().map(|t| t.id.to_string()).collect();
            let mut got = ids_in(row_of(kind)[2]);
            // A row may name a technique the numbers tell apart ("may also be T1499").
            got.retain(|id| !row_of(kind)[2].contains(&format!("may also be {id}")));
            assert_eq!(got, want, "docs/ATTACK.md row for {kind}");
        }
        for (pattern, list) in BY_PATTERN {
            let want: Vec<String> = list.iter().map(|t| t.id.to_string()).collect();
            assert_eq!(
                ids_in(row_of(pattern)[2]),
                want,
                "docs/ATTACK.md row for {pattern}"
            );
        }
    }

    #[test]
    fn ids_are_attack_ids_and_urls_follow_the_site() {
        let lists = BY_KIND
            .iter()
            .map(|(_, l)| *l)
            .chain(BY_PATTERN.iter().map(|(_, l)| *l));
        for t in lists.flatten() {
            let (base, sub) = t.id.split_once('.').unwrap_or((t.id, ""));
            assert!(base.starts_with('T') && base.len() == 5, "{}", t.id);
            assert!(base[1..].chars().all(|c| c.is_ascii_digit()), "{}", t.id);
            assert!(sub.is_empty() || (sub.len() == 3 && sub.chars().all(|c| c.is_ascii_digit())));
        }
        assert_eq!(
            CLOUD_METADATA_API.url(),
            "https://attack.mitre.org/techniques/T1552/005/"
        );
    }

    #[test]
    fn alert_json_carries_the_techniques_and_reads_back() {
        let a = alert(AlertKind::FanOut, json!({}));
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["attack"][0]["id"], "T1046");
        assert_eq!(v["attack"][0]["tactic"], "Discovery");
        assert_eq!(
            v["attack"][0]["url"],
            "https://attack.mitre.org/techniques/T1046/"
        );
        assert_eq!(v["kind"], "fan_out");
        // The contract's fields keep their order; `attack` comes last.
        let text = serde_json::to_string(&a).unwrap();
        assert!(text.starts_with("{\"id\":\"a\",\"kind\":"), "{text}");
        let back: Alert = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn a_metadata_call_adds_the_metadata_technique_and_a_notice_has_none() {
        let a = alert(
            AlertKind::SensitiveEndpoint,
            json!({"pattern": "cloud-metadata"}),
        );
        let ids: Vec<_> = techniques(&a).iter().map(|t| t.id).collect();
        assert_eq!(ids, ["T1210", "T1552.005"]);
        let custom = alert(AlertKind::SensitiveEndpoint, json!({"pattern": "mine"}));
        assert_eq!(techniques(&custom), vec![EXPLOIT_REMOTE_SERVICES]);
        let notice = alert(AlertKind::NewEndpoint, json!({"rollout_version": "v2"}));
        assert!(techniques(&notice).is_empty());
        assert!(techniques(&alert(AlertKind::AlertStorm, json!({}))).is_empty());
        let v = serde_json::to_value(&notice).unwrap();
        assert_eq!(v["attack"], json!([]));
    }
}
