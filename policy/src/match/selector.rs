//! Kubernetes label selector semantics over the labels eastwest can vouch for.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::crd::Selector;
use crate::names::{APP_LABEL, NAMESPACE_LABEL};

pub type Labels = BTreeMap<String, String>;

/// A workload's pod labels.
pub fn pod_labels(service: &str) -> Labels {
    Labels::from([(APP_LABEL.to_owned(), service.to_owned())])
}

/// A namespace's labels.
pub fn namespace_labels(namespace: &str) -> Labels {
    Labels::from([(NAMESPACE_LABEL.to_owned(), namespace.to_owned())])
}

/// `matchLabels` all equal and every `matchExpressions` requirement met; an empty
/// selector selects everything.
pub fn matches(
    match_labels: Option<&BTreeMap<String, String>>,
    expressions: &[(String, String, Vec<String>)],
    labels: &Labels,
    key: impl Fn(&str) -> &str,
) -> bool {
    let get = |k: &str| labels.get(key(k));
    match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| get(k) == Some(v))
        && expressions.iter().all(|(k, op, values)| match op.as_str() {
            "In" => get(k).is_some_and(|v| values.contains(v)),
            "NotIn" => get(k).is_none_or(|v| !values.contains(v)),
            "Exists" => get(k).is_some(),
            "DoesNotExist" => get(k).is_none(),
            // An operator Kubernetes does not define selects nothing.
            _ => false,
        })
}

pub fn k8s(selector: &LabelSelector, labels: &Labels) -> bool {
    let exprs: Vec<_> = selector
        .match_expressions
        .iter()
        .flatten()
        .map(|e| {
            (
                e.key.clone(),
                e.operator.clone(),
                e.values.clone().unwrap_or_default(),
            )
        })
        .collect();
    matches(selector.match_labels.as_ref(), &exprs, labels, |k| k)
}

pub fn crd(selector: &Selector, labels: &Labels, key: impl Fn(&str) -> &str) -> bool {
    let exprs: Vec<_> = selector
        .match_expressions
        .iter()
        .flatten()
        .map(|e| {
            (
                e.key.clone(),
                e.operator.clone(),
                e.values.clone().unwrap_or_default(),
            )
        })
        .collect();
    matches(selector.match_labels.as_ref(), &exprs, labels, key)
}
