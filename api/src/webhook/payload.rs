//! Payloads per destination kind, rendered once at enqueue time and stored in the
//! outbox, so retries send identical bytes (and identical signatures).

use eastwest_model::{Alert, Severity};
use serde_json::{Value, json};

use crate::config::{WebhookConfig, WebhookKind};

#[derive(Debug, Clone)]
pub struct PayloadContext {
    /// Dashboard base URL without trailing slash.
    pub public_base: String,
    pub hostname: String,
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
        WebhookKind::Generic => return serde_json::to_string(alert),
        WebhookKind::Slack => slack(alert, ctx),
        WebhookKind::Alertmanager => alertmanager(alert, ctx),
        WebhookKind::Falco => falco(alert, ctx),
    };
    serde_json::to_string(&value)
}

fn destination_key(alert: &Alert) -> String {
    alert
        .destination
        .as_ref()
        .map(|d| d.key())
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

/// Slack mrkdwn control characters; telemetry is attacker-controlled (`<!channel>`).
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut t: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    t.push('…');
    t
}

fn slack(alert: &Alert, ctx: &PayloadContext) -> Value {
    let title = format!(
        "[{}] {}",
        alert.severity.as_str().to_uppercase(),
        alert.kind.as_str().replace('_', " ")
    );
    let url = ctx.alert_url(alert);
    let text = slack_escape(&format!("{title}: {}", alert.summary));
    json!({
        "text": truncate(&text, 3000),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": truncate(&format!("eastwest {title}"), 150)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&slack_escape(&alert.summary), 3000)}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": truncate(&format!("*Call*\n`{}`", slack_escape(&call_text(alert))), 2000)},
                {"type": "mrkdwn", "text": format!("*Score*\n{:.1} (seen {}×)", alert.score, alert.count)},
                {"type": "mrkdwn", "text": format!("*First seen*\n{}", alert.first_seen.to_rfc3339())},
                {"type": "mrkdwn", "text": truncate(&format!("*Identity*\n{}", slack_escape(alert.source.principal.as_deref().unwrap_or("unknown"))), 2000)},
            ]},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": format!("<{url}|Open in eastwest> · alert `{}`", slack_escape(&alert.id))}
            ]}
        ]
    })
}

fn alertmanager(alert: &Alert, ctx: &PayloadContext) -> Value {
    let mut labels = serde_json::Map::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            labels.insert(k.into(), Value::String(v));
        }
    };
    put(
        "alertname",
        Some(format!("eastwest_{}", alert.kind.as_str())),
    );
    put("severity", Some(alert.severity.as_str().into()));
    put("kind", Some(alert.kind.as_str().into()));
    put("source_service", Some(alert.source.service.clone()));
    put(
        "destination_service",
        alert.destination.as_ref().map(|d| d.service.clone()),
    );
    put("namespace", alert.source.namespace.clone());
    put(
        "destination_namespace",
        alert.destination.as_ref().and_then(|d| d.namespace.clone()),
    );
    put("alert_id", Some(alert.id.clone()));
    json!([{
        "labels": labels,
        "annotations": {
            "summary": alert.summary,
            "call": call_text(alert),
            "score": format!("{:.2}", alert.score),
        },
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
    json!({
        "uuid": uuid::Uuid::new_v4().to_string(),
        "output": format!("{time}: {priority} {} (call={} score={:.1} alert={})",
            alert.summary, call_text(alert), alert.score, alert.id),
        "priority": priority,
        "rule": format!("eastwest {}", alert.kind.as_str().replace('_', " ")),
        "time": time,
        "output_fields": {
            "eastwest.alert_id": alert.id,
            "eastwest.kind": alert.kind.as_str(),
            "eastwest.score": alert.score,
            "eastwest.count": alert.count,
            "eastwest.source": alert.source.key(),
            "eastwest.source_principal": alert.source.principal,
            "eastwest.destination": alert.destination.as_ref().map(|d| d.key()),
            "eastwest.method": alert.method,
            "eastwest.route": alert.route,
            "eastwest.url": ctx.alert_url(alert),
            "k8s.ns.name": alert.source.namespace,
        },
        "source": "eastwest",
        "tags": ["eastwest", "lateral_movement", alert.kind.as_str()],
        "hostname": ctx.hostname,
    })
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
