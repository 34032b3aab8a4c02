//! Typed bindings for the custom resources eastwest reads and writes, made with kube-rs's
//! `CustomResource` derive. Only the fields eastwest emits or can evaluate are defined,
//! spelled as in the upstream CRD schemas; a document using any other spec field is
//! refused when read (`deny_unknown_fields`), so a backtest never silently ignores a
//! condition it cannot evaluate.

pub mod cilium;
pub mod istio;
pub mod linkerd;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `matchLabels` / `matchExpressions`, as in Kubernetes' `LabelSelector` (Istio's
/// `WorkloadSelector` has only `matchLabels`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<SelectorRequirement>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

impl Selector {
    pub fn labels(labels: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            match_labels: Some(labels.into_iter().collect()),
            match_expressions: None,
        }
    }
}
