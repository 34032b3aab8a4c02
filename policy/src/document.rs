//! Policy documents in the four dialects, written and read as multi-document YAML
//! through the typed bindings (k8s-openapi for `NetworkPolicy`, [`crate::crd`] for the
//! rest), so what is written matches the schemas by construction and what is read is
//! checked against them.

use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::{Deserialize, Serialize};

use crate::PolicyError;
use crate::crd::{cilium, istio, linkerd};

/// A policy dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Istio,
    NetworkPolicy,
    Cilium,
    Linkerd,
}

impl Format {
    pub const ALL: [Format; 4] = [
        Format::Istio,
        Format::NetworkPolicy,
        Format::Cilium,
        Format::Linkerd,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Istio => "istio",
            Format::NetworkPolicy => "networkpolicy",
            Format::Cilium => "cilium",
            Format::Linkerd => "linkerd",
        }
    }

    pub fn parse(s: &str) -> Result<Self, PolicyError> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| PolicyError::UnknownFormat(s.to_owned()))
    }
}

/// One Kubernetes object eastwest can write or evaluate.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Document {
    Istio(istio::AuthorizationPolicy),
    NetworkPolicy(NetworkPolicy),
    Cilium(cilium::CiliumNetworkPolicy),
    LinkerdServer(linkerd::Server),
    LinkerdRoute(linkerd::HTTPRoute),
    LinkerdAuthorization(linkerd::AuthorizationPolicy),
    LinkerdMeshTls(linkerd::MeshTLSAuthentication),
}

impl Document {
    pub fn format(&self) -> Format {
        match self {
            Document::Istio(_) => Format::Istio,
            Document::NetworkPolicy(_) => Format::NetworkPolicy,
            Document::Cilium(_) => Format::Cilium,
            _ => Format::Linkerd,
        }
    }

    /// `Kind namespace/name`, for reports.
    pub fn describe(&self) -> String {
        let (kind, meta) = match self {
            Document::Istio(d) => ("AuthorizationPolicy", &d.metadata),
            Document::NetworkPolicy(d) => ("NetworkPolicy", &d.metadata),
            Document::Cilium(d) => ("CiliumNetworkPolicy", &d.metadata),
            Document::LinkerdServer(d) => ("Server", &d.metadata),
            Document::LinkerdRoute(d) => ("HTTPRoute", &d.metadata),
            Document::LinkerdAuthorization(d) => ("AuthorizationPolicy", &d.metadata),
            Document::LinkerdMeshTls(d) => ("MeshTLSAuthentication", &d.metadata),
        };
        format!(
            "{kind} {}/{}",
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref().unwrap_or("")
        )
    }
}

/// Documents as multi-document YAML (`---` between them), after a comment header.
pub fn to_yaml(header: &[String], docs: &[Document]) -> Result<String, PolicyError> {
    let mut out = String::new();
    for line in header {
        // Comment lines carry names from telemetry: no line breaks may end the comment.
        let line: String = line
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        out.push_str("# ");
        out.push_str(&line);
        out.push('\n');
    }
    for doc in docs {
        out.push_str("---\n");
        out.push_str(&yaml_serde::to_string(doc)?);
    }
    Ok(out)
}

/// Largest policy text read (a backtest body, a file).
pub const MAX_YAML_BYTES: usize = 8 << 20;
/// Most documents read from one text.
pub const MAX_DOCUMENTS: usize = 10_000;

/// Reads every document of a multi-document YAML text; empty documents are skipped,
/// a `List` (as `kubectl get -o yaml` writes) is unwrapped, and an object of a kind
/// eastwest cannot evaluate is an error naming it.
pub fn parse_yaml(text: &str) -> Result<Vec<Document>, PolicyError> {
    if text.len() > MAX_YAML_BYTES {
        return Err(PolicyError::Parse {
            index: 0,
            detail: format!("more than {MAX_YAML_BYTES} bytes"),
        });
    }
    let mut docs = Vec::new();
    for (index, de) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let bad = |detail: String| PolicyError::Parse { index, detail };
        let value = yaml_serde::Value::deserialize(de).map_err(|e| bad(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let items = match value.get("kind").and_then(|k| k.as_str()) {
            Some("List") => match value.get("items") {
                Some(yaml_serde::Value::Sequence(items)) => items.clone(),
                _ => return Err(bad("a List without items".into())),
            },
            _ => vec![value],
        };
        for item in items {
            if docs.len() >= MAX_DOCUMENTS {
                return Err(bad(format!("more than {MAX_DOCUMENTS} documents")));
            }
            docs.push(document(item).map_err(bad)?);
        }
    }
    Ok(docs)
}

fn document(value: yaml_serde::Value) -> Result<Document, String> {
    let field = |k: &str| {
        value
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    let (api, kind) = (field("apiVersion"), field("kind"));
    fn typed<T: serde::de::DeserializeOwned>(v: yaml_serde::Value) -> Result<T, String> {
        yaml_serde::from_value(v).map_err(|e| e.to_string())
    }
    let group = api.split('/').next().unwrap_or("");
    let doc = match (group, kind.as_str()) {
        ("security.istio.io", "AuthorizationPolicy") => Document::Istio(typed(value)?),
        ("networking.k8s.io", "NetworkPolicy") => Document::NetworkPolicy(typed(value)?),
        ("cilium.io", "CiliumNetworkPolicy") => Document::Cilium(typed(value)?),
        ("policy.linkerd.io", "Server") => Document::LinkerdServer(typed(value)?),
        ("policy.linkerd.io" | "gateway.networking.k8s.io", "HTTPRoute") => {
            Document::LinkerdRoute(typed(value)?)
        }
        ("policy.linkerd.io", "AuthorizationPolicy") => {
            Document::LinkerdAuthorization(typed(value)?)
        }
        ("policy.linkerd.io", "MeshTLSAuthentication") => Document::LinkerdMeshTls(typed(value)?),
        _ => {
            return Err(format!(
                "{kind:?} of {api:?} is not a policy eastwest evaluates (Istio AuthorizationPolicy, \
                 NetworkPolicy, CiliumNetworkPolicy, Linkerd Server/HTTPRoute/AuthorizationPolicy/\
                 MeshTLSAuthentication)"
            ));
        }
    };
    Ok(doc)
}
