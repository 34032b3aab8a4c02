//! Payloads per destination kind, rendered once at enqueue time and stored in the
//! outbox, so retries send identical bytes.
//!
//! Names, routes and principals come from telemetry and are attacker-controlled. Slack
//! gets them only in `plain_text` objects (shown as typed) and, in the notification
//! text, escaped for mrkdwn; Alertmanager and Falcosidekick get them with hidden
//! characters replaced, `<` `>` neutralised and lengths capped (see [`sanitize`]). The
//! generic payload is the Alert JSON as stored: JSON escaping is the receiver's guard.

use eastwest_model::{Alert, Severity};
use serde_json::{Value, json};

use super::{enrich, sanitize};
use crate::config::{WebhookConfig, WebhookKind};

#[derive(Debug, Clone)]
pub struct PayloadContext {
    /// Dashboard base URL without trailing slash.
    pub public_base: String,
    pub hostname: String,
    /// `[api] trace_url_template`: trace ids become links in payloads.
    pub trace_url_template: Option<String>,
}

impl PayloadContext {
    pub fn alert_url(&self, alert: &Alert) -> String {
        format!(
            "{}/#/alerts/{}",
            self.public_base,
            urlencode_path(&alert.id)
        )
    }
}

pub fn render(
    hook: &WebhookConfig,
    alert: &Alert,
    ctx: &PayloadContext,
) -> Result<String, serde_json::Error> {
    let value = match hook.kind {
        WebhookKind::Generic => return generic(alert, ctx),
        WebhookKind::Slack => slack(alert, ctx),
        WebhookKind::Alertmanager => alertmanager(alert, ctx),
        WebhookKind::Falco => falco(alert, ctx),
    };
    serde_json::to_string(&value)
}

/// The Alert JSON (with its `attack` techniques), plus `trace_links` when a trace UI is
/// configured and `deny_rule` (the suggested minimal deny rules, YAML in JSON strings)
/// when the alert names a call one can be written for.
fn generic(alert: &Alert, ctx: &PayloadContext) -> Result<String, serde_json::Error> {
    #[derive(serde::Serialize)]
    struct WithLinks<'a> {
        #[serde(flatten)]
        alert: &'a Alert,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        trace_links: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        deny_rule: Option<eastwest_policy::DenySuggestion>,
    }
    let trace_links = enrich::trace_links(alert, ctx);
    let deny_rule = deny_rule(alert);
    if trace_links.is_empty() && deny_rule.is_none() {
        return serde_json::to_string(alert);
    }
    serde_json::to_string(&WithLinks {
        alert,
        trace_links,
        deny_rule,
    })
}

/// The suggested deny rules, when at least one dialect can express them.
fn deny_rule(alert: &Alert) -> Option<eastwest_policy::DenySuggestion> {
    let s = eastwest_policy::deny_rules(alert);
    (s.istio.is_some() || s.cilium.is_some()).then_some(s)
}

/// A deny rule's YAML for a chat message: each line made visible and `<` `>`
/// neutralised on its own (the line breaks are the serialiser's, names inside are
/// quoted by it), capped as a whole.
fn rule_text(yaml: &str, max_chars: usize) -> String {
    let lines: Vec<String> = yaml
        .lines()
        .map(|l| sanitize::forwardable(l, max_chars))
        .collect();
    sanitize::cap(&lines.join("\n"), max_chars)
}

fn destination_key(alert: &Alert) -> String {
    alert
        .destination
        .as_ref()
        .map(|d| d.key().into())
        .unwrap_or_else(|| "-".into())
}

fn call_text(alert: &Alert) -> String {
    let mut call = format!("{} → {}", alert.source.key(), destination_key(alert));
    if let Some(m) = &alert.method {
        call.push(' ');
        call.push_str(m);
    }
    if let Some(r) = &alert.route {
        call.push(' ');
        call.push_str(r);
    }
    call
}

/// Slack's limits: section text 3000, a field 2000, a header 150 characters.
const SLACK_TEXT_MAX: usize = 3000;
const SLACK_FIELD_MAX: usize = 2000;
const SLACK_HEADER_MAX: usize = 150;
/// Alertmanager label values: long enough for any real name, short enough that a
/// hostile one cannot bloat every notification and the label index.
const LABEL_MAX: usize = 256;
const ANNOTATION_MAX: usize = 2048;
/// Falcosidekick fields and output.
const FALCO_FIELD_MAX: usize = 512;
const FALCO_OUTPUT_MAX: usize = 4096;

/// Text Slack shows as it is: no markup, links, mentions or emoji codes are read in a
/// `plain_text` object. Every value that comes from telemetry goes into one of these,
/// with hidden characters replaced and `<` `>` neutralised as well, so even a client
/// that read mentions there could find none.
fn slack_plain(text: &str, max_chars: usize) -> Value {
    slack_plain_field("", text, max_chars)
}

/// [`slack_plain`] under eastwest's own `label` line.
fn slack_plain_field(label: &str, value: &str, max_chars: usize) -> Value {
    let budget = max_chars.saturating_sub(label.chars().count());
    let text = format!("{label}{}", nonempty(sanitize::forwardable(value, budget)));
    json!({"type": "plain_text", "text": text, "emoji": false})
}

/// mrkdwn for eastwest's own text; `verbatim` stops Slack from turning plain text into
/// links or mentions.
fn slack_mrkdwn(text: String) -> Value {
    json!({"type": "mrkdwn", "text": text, "verbatim": true})
}

/// Slack refuses empty text objects.
fn nonempty(text: String) -> String {
    if text.is_empty() { "-".into() } else { text }
}

fn slack(alert: &Alert, ctx: &PayloadContext) -> Value {
    let title = format!(
        "[{}] {}",
        alert.severity.as_str().to_uppercase(),
        alert.kind.as_str().replace('_', " ")
    );
    let url = ctx.alert_url(alert);
    let identity = alert.source.principal.as_deref().unwrap_or("unknown");
    // The notification text is mrkdwn without `verbatim`: every character that could
    // format, link or mention is escaped (`sanitize::mrkdwn`).
    let text = sanitize::cap(
        &format!(
            "{}: {}",
            sanitize::mrkdwn(&title, SLACK_HEADER_MAX),
            sanitize::mrkdwn(&alert.summary, SLACK_TEXT_MAX)
        ),
        SLACK_TEXT_MAX,
    );
    let mut context = vec![
        // The URL is eastwest's own base and a percent-encoded id: no `|` or `>`.
        slack_mrkdwn(format!("<{url}|Open in eastwest>")),
        slack_plain_field("alert ", &alert.id, SLACK_FIELD_MAX),
    ];
    // The operator's template with a percent-encoded id; a template holding Slack's
    // link syntax itself is left out rather than escaped into a broken link.
    if let Some(trace) = enrich::trace_links(alert, ctx)
        .into_iter()
        .next()
        .filter(|u| !u.contains(['<', '>', '|']))
    {
        context.push(slack_mrkdwn(format!("<{trace}|Open trace>")));
    }
    let mut message = json!({
        "text": text,
        "blocks": [
            {"type": "header", "text": slack_plain(&format!("eastwest {title}"), SLACK_HEADER_MAX)},
            {"type": "section", "text": slack_plain(&alert.summary, SLACK_TEXT_MAX)},
            {"type": "section", "fields": [
                slack_plain_field("Call\n", &call_text(alert), SLACK_FIELD_MAX),
                slack_mrkdwn(format!("*Score*\n{:.1} (seen {}×)", alert.score, alert.count)),
                slack_mrkdwn(format!("*First seen*\n{}", alert.first_seen.to_rfc3339())),
                slack_plain_field("Identity\n", identity, SLACK_FIELD_MAX),
                slack_mrkdwn(format!("*ATT&CK*\n{}", nonempty(enrich::technique_text(alert)))),
            ]},
            {"type": "context", "elements": context}
        ]
    });
    // The suggested deny rule (eastwest applies nothing), as plain text.
    if let Some(yaml) = deny_rule(alert).and_then(|d| d.istio.or(d.cilium)) {
        let label = "Suggested deny rule (review before applying; eastwest applies nothing)\n";
        let text = format!("{label}{}", rule_text(&yaml, SLACK_TEXT_MAX - label.len()));
        let block = json!({"type": "section", "text": {"type": "plain_text", "text": text, "emoji": false}});
        let blocks = message["blocks"]
            .as_array_mut()
            .expect("blocks is an array");
        let at = blocks.len() - 1;
        blocks.insert(at, block);
    }
    message
}

fn alertmanager(alert: &Alert, ctx: &PayloadContext) -> Value {
    let mut labels = serde_json::Map::new();
    let mut put = |k: &str, v: Option<&str>| {
        let v = v.map(|v| sanitize::forwardable(v, LABEL_MAX));
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            labels.insert(k.into(), Value::String(v));
        }
    };
    put(
        "alertname",
        Some(&format!("eastwest_{}", alert.kind.as_str())),
    );
    put("severity", Some(alert.severity.as_str()));
    put("kind", Some(alert.kind.as_str()));
    put("source_service", Some(&alert.source.service));
    put(
        "destination_service",
        alert.destination.as_ref().map(|d| d.service.as_str()),
    );
    put("namespace", alert.source.namespace.as_deref());
    put(
        "destination_namespace",
        alert
            .destination
            .as_ref()
            .and_then(|d| d.namespace.as_deref()),
    );
    put("alert_id", Some(&alert.id));
    put("attack_techniques", Some(&enrich::technique_ids(alert)));
    let mut annotations = serde_json::Map::new();
    annotations.insert(
        "summary".into(),
        json!(sanitize::forwardable(&alert.summary, ANNOTATION_MAX)),
    );
    annotations.insert(
        "call".into(),
        json!(sanitize::forwardable(&call_text(alert), ANNOTATION_MAX)),
    );
    annotations.insert("score".into(), json!(format!("{:.2}", alert.score)));
    let attack = enrich::technique_text(alert);
    if !attack.is_empty() {
        annotations.insert("attack".into(), json!(attack));
    }
    if let Some(trace) = enrich::trace_links(alert, ctx).into_iter().next() {
        annotations.insert("trace_url".into(), json!(trace));
    }
    json!([{
        "labels": labels,
        "annotations": annotations,
        "startsAt": alert.first_seen.to_rfc3339(),
        "generatorURL": ctx.alert_url(alert),
    }])
}

fn falco_priority(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "Critical",
        Severity::High => "Error",
        Severity::Medium => "Warning",
        Severity::Low => "Notice",
        Severity::Info => "Informational",
    }
}

fn falco(alert: &Alert, ctx: &PayloadContext) -> Value {
    let priority = falco_priority(alert.severity);
    let time = alert
        .last_seen
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let field = |v: &str| sanitize::forwardable(v, FALCO_FIELD_MAX);
    let output = format!(
        "{time}: {priority} {} (call={} score={:.1} alert={})",
        alert.summary,
        call_text(alert),
        alert.score,
        alert.id
    );
    json!({
        "uuid": uuid::Uuid::new_v4().to_string(),
        "output": sanitize::forwardable(&output, FALCO_OUTPUT_MAX),
        "priority": priority,
        "rule": format!("eastwest {}", alert.kind.as_str().replace('_', " ")),
        "time": time,
        "output_fields": {
            "eastwest.alert_id": field(&alert.id),
            "eastwest.kind": alert.kind.as_str(),
            "eastwest.score": alert.score,
            "eastwest.count": alert.count,
            "eastwest.source": field(&alert.source.key()),
            "eastwest.source_principal": alert.source.principal.as_deref().map(field),
            "eastwest.destination": alert.destination.as_ref().map(|d| field(&d.key())),
            "eastwest.method": alert.method.as_deref().map(field),
            "eastwest.route": alert.route.as_deref().map(field),
            "eastwest.url": ctx.alert_url(alert),
            "eastwest.attack": enrich::technique_ids(alert),
            "eastwest.trace_url": enrich::trace_links(alert, ctx).into_iter().next(),
            "k8s.ns.name": alert.source.namespace.as_deref().map(field),
        },
        "source": "eastwest",
        "tags": falco_tags(alert),
        "hostname": sanitize::forwardable(&ctx.hostname, FALCO_FIELD_MAX),
    })
}

fn falco_tags(alert: &Alert) -> Vec<String> {
    let mut tags: Vec<String> = ["eastwest", "lateral_movement", alert.kind.as_str()]
        .map(String::from)
        .to_vec();
    tags.extend(enrich::falco_tags(alert));
    tags
}

fn urlencode_path(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// This host's name for Falco's `hostname` field.
pub(crate) fn local_hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "eastwest".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use eastwest_model::{AlertKind, AlertState, Workload};

    fn alert() -> Alert {
        Alert {
            id: "a/1".into(),
            kind: AlertKind::SensitiveEndpoint,
            severity: Severity::High,
            score: 9.1,
            source: Workload::new("cart").in_namespace("shop"),
            destination: Some(Workload::new("users").in_namespace("shop")),
            method: Some("DELETE".into()),
            route: Some("/admin/users/{id}".into()),
            entry: None,
            first_seen: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            last_seen: Utc.timestamp_opt(1_700_000_060, 0).unwrap(),
            count: 3,
            trace_ids: vec![],
            incident_id: None,
            summary: "cart called <!channel> users".into(),
            evidence: Default::default(),
            state: AlertState::Open,
        }
    }

    fn ctx() -> PayloadContext {
        PayloadContext {
            public_base: "https://ew.example".into(),
            hostname: "node1".into(),
            trace_url_template: None,
        }
    }

    fn hook(kind: WebhookKind) -> WebhookConfig {
        WebhookConfig {
            name: "x".into(),
            kind,
            url: "http://x".into(),
            ..Default::default()
        }
    }

    #[test]
    fn alertmanager_payload_has_labels_annotations_and_link() {
        let v: Value = serde_json::from_str(
            &render(&hook(WebhookKind::Alertmanager), &alert(), &ctx()).unwrap(),
        )
        .unwrap();
        let a = &v[0];
        assert_eq!(a["labels"]["alertname"], "eastwest_sensitive_endpoint");
        assert_eq!(a["labels"]["destination_service"], "users");
        assert_eq!(a["labels"]["namespace"], "shop");
        assert_eq!(a["generatorURL"], "https://ew.example/#/alerts/a%2F1");
        assert_eq!(a["startsAt"], "2023-11-14T22:13:20+00:00");
    }

    #[test]
    fn slack_payload_escapes_mentions() {
        let s = render(&hook(WebhookKind::Slack), &alert(), &ctx()).unwrap();
        assert!(!s.contains("<!channel>"));
        assert!(s.contains("&lt;!channel&gt;"));
        let v: Value = serde_json::from_str(&s).unwrap();
        assert!(v["blocks"].as_array().unwrap().len() >= 3);
    }

    #[test]
    fn payloads_suggest_the_minimal_deny_rule() {
        let mut a = alert();
        a.source.principal = Some("spiffe://cluster.local/ns/shop/sa/cart".into());
        let generic: Value =
            serde_json::from_str(&render(&hook(WebhookKind::Generic), &a, &ctx()).unwrap())
                .unwrap();
        let istio = generic["deny_rule"]["istio"].as_str().unwrap();
        assert!(
            istio.contains("action: DENY") && istio.contains("/admin/users/{*}"),
            "{istio}"
        );
        assert!(
            generic["deny_rule"]["cilium"]
                .as_str()
                .unwrap()
                .contains("ingressDeny")
        );
        let slack: Value =
            serde_json::from_str(&render(&hook(WebhookKind::Slack), &a, &ctx()).unwrap()).unwrap();
        let mut objects = Vec::new();
        text_objects(&slack["blocks"], &mut objects);
        let rule = objects
            .iter()
            .find(|o| {
                o["text"]
                    .as_str()
                    .unwrap()
                    .starts_with("Suggested deny rule")
            })
            .expect("deny rule block");
        assert_eq!(rule["type"], "plain_text");
        assert!(
            rule["text"]
                .as_str()
                .unwrap()
                .contains("\n  action: DENY\n"),
            "{rule}"
        );
        // No callee, no rule: the payload is the alert as stored.
        a.destination = None;
        let generic: Value =
            serde_json::from_str(&render(&hook(WebhookKind::Generic), &a, &ctx()).unwrap())
                .unwrap();
        assert!(generic.get("deny_rule").is_none());
    }

    /// Every `type` object in a Block Kit payload, depth first.
    fn text_objects<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        match v {
            Value::Object(m) => {
                if matches!(
                    m.get("type").and_then(Value::as_str),
                    Some("mrkdwn" | "plain_text")
                ) {
                    out.push(v);
                }
                m.values().for_each(|x| text_objects(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| text_objects(x, out)),
            _ => {}
        }
    }

    /// Every string in a JSON value.
    fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Object(m) => m.values().for_each(|x| strings(x, out)),
            Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            _ => {}
        }
    }

    const HOSTILE: &str =
        "svc`*b*_i_~s~ <!channel> <http://phish.example|login> http://x.example\n> q\u{202E}";

    fn hostile_alert(name: &str) -> Alert {
        let mut a = alert();
        a.id = format!("id{name}");
        a.source = Workload::new(name)
            .in_namespace(format!("ns{name}"))
            .with_principal(format!("spiffe://{name}"));
        a.destination = Some(Workload::new(format!("d{name}")));
        a.method = Some(format!("M{name}"));
        a.route = Some(format!("/r{name}"));
        a.summary = format!("{name} called d{name} for the first time");
        a
    }

    #[test]
    fn slack_shows_hostile_names_only_as_text() {
        let a = hostile_alert(HOSTILE);
        let v: Value =
            serde_json::from_str(&render(&hook(WebhookKind::Slack), &a, &ctx()).unwrap()).unwrap();
        let mut objects = Vec::new();
        text_objects(&v["blocks"], &mut objects);
        let call = objects
            .iter()
            .find(|o| o["text"].as_str().unwrap().starts_with("Call\n"))
            .expect("call field");
        // The name is shown as typed, backticks, stars and all, with `<>` and hidden
        // characters neutralised.
        assert_eq!(call["type"], "plain_text");
        assert_eq!(call["emoji"], false);
        assert!(
            call["text"].as_str().unwrap().contains(
                "svc`*b*_i_~s~ ‹!channel› ‹http://phish.example|login› http://x.example\u{FFFD}› q\u{FFFD}"
            ),
            "{call}"
        );
        for o in &objects {
            if o["type"] == "mrkdwn" {
                assert_eq!(o["verbatim"], true, "{o}");
                let text = o["text"].as_str().unwrap();
                // Only the dashboard link carries the (percent-encoded) alert id.
                assert!(
                    text.starts_with("<https://") || !text.contains("svc"),
                    "{o}"
                );
            }
        }
        let text = v["text"].as_str().unwrap();
        assert!(
            text.contains("svcˋ∗b∗ˍiˍ∼s∼ &lt;!channel&gt; &lt;http://phish.example|login&gt;"),
            "{text}"
        );
    }

    #[test]
    fn alertmanager_and_falco_get_visible_bounded_text() {
        let long = format!("{HOSTILE}{}", "x".repeat(5000));
        for name in [HOSTILE, long.as_str()] {
            let a = hostile_alert(name);
            let am: Value = serde_json::from_str(
                &render(&hook(WebhookKind::Alertmanager), &a, &ctx()).unwrap(),
            )
            .unwrap();
            let labels = am[0]["labels"].as_object().unwrap();
            let source = labels["source_service"].as_str().unwrap();
            assert!(source.starts_with("svc`*b*_i_~s~ ‹!channel›"), "{source}");
            for (k, v) in labels {
                let v = v.as_str().unwrap();
                assert!(v.chars().count() <= LABEL_MAX, "{k}");
                assert!(
                    !v.chars().any(sanitize::is_hidden) && !v.contains('<'),
                    "{k}: {v}"
                );
            }
            let falco: Value =
                serde_json::from_str(&render(&hook(WebhookKind::Falco), &a, &ctx()).unwrap())
                    .unwrap();
            assert!(falco["output"].as_str().unwrap().chars().count() <= FALCO_OUTPUT_MAX);
            let mut all = Vec::new();
            strings(&falco, &mut all);
            strings(&am, &mut all);
            for s in all {
                assert!(
                    !s.chars().any(sanitize::is_hidden) && !s.contains('<'),
                    "{s:?}"
                );
            }
        }
    }

    proptest::proptest! {
        /// Whatever the names, Slack mrkdwn never carries them, plain text never carries
        /// `<`, `>` or hidden characters, the notification text has no unescaped
        /// control character, and the only link is eastwest's own.
        #[test]
        fn no_hostile_name_escapes_into_slack_markup(name in "\\PC{0,12}|[`*_~<>&!|:/ a-z\n\u{202E}]{0,24}") {
            let a = hostile_alert(&name);
            let body = render(&hook(WebhookKind::Slack), &a, &ctx()).unwrap();
            let v: Value = serde_json::from_str(&body).unwrap();
            let mut objects = Vec::new();
            text_objects(&v, &mut objects);
            let mut links = 0;
            for o in &objects {
                let text = o["text"].as_str().unwrap();
                proptest::prop_assert!(!text.is_empty());
                if o["type"] == "mrkdwn" {
                    proptest::prop_assert_eq!(&o["verbatim"], true);
                    if text.starts_with('<') {
                        links += 1;
                        proptest::prop_assert!(text.starts_with("<https://ew.example/#/alerts/"), "{}", text);
                        proptest::prop_assert!(text.ends_with("|Open in eastwest>"), "{}", text);
                        let id = &text["<https://ew.example/#/alerts/".len()..text.len() - "|Open in eastwest>".len()];
                        proptest::prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b"%-_.~:".contains(&b)), "{}", id);
                    } else {
                        proptest::prop_assert!(!text.contains(['<', '>', '`']), "{}", text);
                    }
                } else {
                    proptest::prop_assert_eq!(&o["emoji"], false);
                    proptest::prop_assert!(!text.contains(['<', '>']), "{}", text);
                    let shown = text
                        .strip_prefix("Call\n")
                        .or_else(|| text.strip_prefix("Identity\n"))
                        .unwrap_or(text);
                    proptest::prop_assert!(!shown.chars().any(sanitize::is_hidden), "{:?}", text);
                }
            }
            proptest::prop_assert_eq!(links, 1);
            let fallback = v["text"].as_str().unwrap();
            proptest::prop_assert!(!fallback.contains(['<', '>', '`', '*', '_', '~']), "{}", fallback);
            proptest::prop_assert!(!fallback.chars().any(sanitize::is_hidden), "{}", fallback);
        }

        #[test]
        fn alertmanager_labels_stay_valid(name in "\\PC{0,300}|[`*_~<>&!|:/ a-z\n\u{0}\u{202E}]{0,300}") {
            let a = hostile_alert(&name);
            let v: Value =
                serde_json::from_str(&render(&hook(WebhookKind::Alertmanager), &a, &ctx()).unwrap()).unwrap();
            for (k, value) in v[0]["labels"].as_object().unwrap() {
                // Prometheus label names; values non-empty, visible, bounded.
                proptest::prop_assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                let value = value.as_str().unwrap();
                proptest::prop_assert!(!value.is_empty() && value.chars().count() <= LABEL_MAX);
                proptest::prop_assert!(!value.chars().any(sanitize::is_hidden) && !value.contains(['<', '>']));
            }
        }
    }

    #[test]
    fn falco_payload_has_falcosidekick_fields() {
        let v: Value =
            serde_json::from_str(&render(&hook(WebhookKind::Falco), &alert(), &ctx()).unwrap())
                .unwrap();
        for f in [
            "uuid",
            "output",
            "priority",
            "rule",
            "time",
            "output_fields",
            "source",
            "tags",
            "hostname",
        ] {
            assert!(!v[f].is_null(), "missing {f}");
        }
        assert_eq!(v["priority"], "Error");
        assert_eq!(v["hostname"], "node1");
    }
}
