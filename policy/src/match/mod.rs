//! Each dialect's matching semantics, as its documentation specifies them, over calls
//! as eastwest records them. Pods are assumed to carry `app: <service>` and their
//! namespace's `kubernetes.io/metadata.name` label (the convention the compilers write);
//! a selector on any other label selects nothing here. A call's route stands for its
//! paths: a placeholder segment (`{id}`) is one path segment; the collector's
//! `{overflow}` route stands for an unknown path, which only a condition every path
//! meets (no path condition, Istio `*`, `/*` or `/{**}`, Linkerd `PathPrefix /`) matches.
//!
//! Several dialects may be in force at once (NetworkPolicy under Istio, say): a call is
//! denied when any layer denies it, allowed by a rule when some layer has one for it,
//! and default-allowed when no layer selects its destination at all.

mod cilium;
mod istio;
mod linkerd;
mod netpol;
mod selector;

#[cfg(test)]
mod tests;

use eastwest_model::{CompactString, Protocol};
use serde::Serialize;

use crate::PolicyError;
use crate::document::Document;
use crate::names::{self, Segment};

/// A call as the matchers see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct CallView {
    pub source_service: CompactString,
    pub source_namespace: Option<CompactString>,
    /// SPIFFE id (`spiffe://td/ns/x/sa/y`) the caller presented, if any.
    pub principal: Option<CompactString>,
    pub destination_service: CompactString,
    pub destination_namespace: Option<CompactString>,
    pub protocol: Protocol,
    pub method: CompactString,
    pub route: CompactString,
    pub port: Option<u16>,
}

impl CallView {
    /// The call as a policy sees it (the port from its destination address).
    pub fn from_call(c: &eastwest_model::Call) -> Self {
        Self {
            source_service: c.source.service.clone(),
            source_namespace: c.source.namespace.clone(),
            principal: c.source.principal.clone(),
            destination_service: c.destination.service.clone(),
            destination_namespace: c.destination.namespace.clone(),
            protocol: c.protocol,
            method: c.method.clone(),
            route: c.route.clone(),
            port: c
                .destination_address
                .as_deref()
                .and_then(crate::observe::port_of),
        }
    }

    /// The call's path, when it is HTTP or gRPC with a path-like route.
    pub(crate) fn path(&self) -> Option<String> {
        names::plain_path(self.protocol, &self.route)
    }

    pub(crate) fn segments(&self) -> Option<Vec<String>> {
        Some(
            names::path_segments(self.protocol, &self.route)?
                .into_iter()
                .map(|s| match s {
                    Segment::Literal(l) => l,
                    Segment::Any => "{}".to_owned(),
                })
                .collect(),
        )
    }

    /// An HTTP or gRPC call whose route overflowed the collector's route cap: some
    /// path, unknown. Only a path condition that every path meets matches it.
    pub(crate) fn path_unknown(&self) -> bool {
        names::is_overflow(self.protocol, &self.route)
    }

    pub(crate) fn is_http(&self) -> bool {
        matches!(self.protocol, Protocol::Http | Protocol::Grpc)
    }
}

/// What the policies in force do with a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict", content = "by")]
pub enum Verdict {
    /// A rule allows it (the document that does).
    Allowed(String),
    /// No policy selects the destination: it passes only because nothing is enforced.
    DefaultAllowed,
    /// Denied (the document or reason).
    Denied(String),
}

impl Verdict {
    pub fn is_denied(&self) -> bool {
        matches!(self, Verdict::Denied(_))
    }
}

/// One dialect's evaluator.
trait Layer: Send + Sync {
    fn verdict(&self, call: &CallView) -> Verdict;
}

/// Policies ready to evaluate (regular expressions and templates compiled once).
pub struct PolicySet {
    layers: Vec<Box<dyn Layer>>,
    documents: usize,
}

impl PolicySet {
    /// Checks and compiles `docs`; an invalid regex or path template is an error naming
    /// the document.
    pub fn new(docs: &[Document]) -> Result<Self, PolicyError> {
        let mut layers: Vec<Box<dyn Layer>> = Vec::new();
        let of =
            |f: fn(&Document) -> bool| docs.iter().filter(|d| f(d)).cloned().collect::<Vec<_>>();
        let istio = of(|d| matches!(d, Document::Istio(_)));
        if !istio.is_empty() {
            layers.push(Box::new(istio::Istio::new(&istio)?));
        }
        let netpol = of(|d| matches!(d, Document::NetworkPolicy(_)));
        if !netpol.is_empty() {
            layers.push(Box::new(netpol::NetPol::new(&netpol)));
        }
        let cilium = of(|d| matches!(d, Document::Cilium(_)));
        if !cilium.is_empty() {
            layers.push(Box::new(cilium::Cilium::new(&cilium)?));
        }
        let linkerd = of(|d| d.format() == crate::Format::Linkerd);
        if !linkerd.is_empty() {
            layers.push(Box::new(linkerd::Linkerd::new(&linkerd)?));
        }
        Ok(Self {
            layers,
            documents: docs.len(),
        })
    }

    /// Every allow rule of the documents, named as [`Verdict::Allowed`] names it, with
    /// why it is broad when it is (any or wildcard principal, peer or path, every port).
    pub fn rules(docs: &[Document]) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        for d in docs {
            match d {
                Document::Istio(p) => out.extend(istio::rules(p)),
                Document::NetworkPolicy(p) => out.extend(netpol::rules(p)),
                Document::Cilium(p) => out.extend(cilium::rules(p)),
                _ => {}
            }
        }
        out.extend(linkerd::rules(docs));
        out
    }

    pub fn documents(&self) -> usize {
        self.documents
    }

    pub fn verdict(&self, call: &CallView) -> Verdict {
        let mut allowed = None;
        for layer in &self.layers {
            match layer.verdict(call) {
                Verdict::Denied(by) => return Verdict::Denied(by),
                Verdict::Allowed(by) => {
                    allowed.get_or_insert(by);
                }
                Verdict::DefaultAllowed => {}
            }
        }
        allowed.map_or(Verdict::DefaultAllowed, Verdict::Allowed)
    }
}

pub(crate) fn invalid(doc: &str, detail: impl std::fmt::Display) -> PolicyError {
    PolicyError::Parse {
        index: 0,
        detail: format!("{doc}: {detail}"),
    }
}

/// A regex matched against the whole value, as Envoy's safe regex matcher does.
pub(crate) fn full_regex(re: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{re})$"))
        .size_limit(1 << 20)
        .build()
}

pub(crate) fn name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

pub(crate) fn namespace(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}
