//! Istio `AuthorizationPolicy`: policies in the destination's namespace whose selector
//! matches it, and selector-less ones in the root namespace (`istio-system`), apply.
//! A matching `DENY` rule denies; then, if any `ALLOW` policy applies, the call must
//! match one of its rules; with none, it is allowed by default. `AUDIT` and `CUSTOM`
//! decide nothing here. Strings match exactly, by prefix (`abc*`), suffix (`*abc`) or
//! presence (`*`); paths also as templates (`{*}` one segment, `{**}` the rest);
//! principals are `td/ns/x/sa/y` and namespaces those of the caller's principal.

use super::selector::{self, pod_labels};
use super::{CallView, Layer, Verdict, invalid, name, namespace};
use crate::PolicyError;
use crate::crd::istio::{AuthorizationPolicy, Operation, Rule, Source};
use crate::document::Document;

pub const ROOT_NAMESPACE: &str = "istio-system";

pub(super) struct Istio {
    policies: Vec<AuthorizationPolicy>,
}

impl Istio {
    pub fn new(docs: &[Document]) -> Result<Self, PolicyError> {
        let policies: Vec<_> = docs
            .iter()
            .filter_map(|d| match d {
                Document::Istio(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        for p in &policies {
            for path in p
                .spec
                .rules
                .iter()
                .flatten()
                .flat_map(|r| r.to.iter().flatten())
                .flat_map(|t| {
                    t.operation
                        .paths
                        .iter()
                        .flatten()
                        .chain(t.operation.not_paths.iter().flatten())
                })
            {
                if is_template(path) && !valid_template(path) {
                    return Err(invalid(
                        &format!(
                            "AuthorizationPolicy {}/{}",
                            namespace(&p.metadata),
                            name(&p.metadata)
                        ),
                        format!("invalid path template {path:?}"),
                    ));
                }
            }
        }
        Ok(Self { policies })
    }
}

impl Layer for Istio {
    fn verdict(&self, call: &CallView) -> Verdict {
        let Some(ns) = call.destination_namespace.as_deref() else {
            return Verdict::DefaultAllowed;
        };
        let labels = pod_labels(&call.destination_service);
        let applies = |p: &&AuthorizationPolicy| {
            let pns = namespace(&p.metadata);
            match &p.spec.selector {
                None => pns == ns || pns == ROOT_NAMESPACE,
                Some(s) => (pns == ns || pns == ROOT_NAMESPACE) && selector::crd(s, &labels, |k| k),
            }
        };
        let action =
            |p: &AuthorizationPolicy| p.spec.action.clone().unwrap_or_else(|| "ALLOW".into());
        let described = |p: &AuthorizationPolicy| {
            format!(
                "AuthorizationPolicy {}/{}",
                namespace(&p.metadata),
                name(&p.metadata)
            )
        };
        let applying: Vec<_> = self.policies.iter().filter(applies).collect();
        for p in applying.iter().filter(|p| action(p) == "DENY") {
            if p.spec
                .rules
                .iter()
                .flatten()
                .any(|r| rule_matches(r, call, true))
            {
                return Verdict::Denied(described(p));
            }
        }
        let allows: Vec<_> = applying.iter().filter(|p| action(p) == "ALLOW").collect();
        if allows.is_empty() {
            return Verdict::DefaultAllowed;
        }
        for p in &allows {
            let rules = p.spec.rules.iter().flatten();
            if let Some(i) = rules.clone().position(|r| rule_matches(r, call, false)) {
                return Verdict::Allowed(format!("{} rule {i}", described(p)));
            }
        }
        Verdict::Denied(format!("no ALLOW rule of {} matches", described(allows[0])))
    }
}

/// Istio's string match: `*` any non-empty value, `abc*` prefix, `*abc` suffix, exact.
pub fn string_matches(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        return !value.is_empty();
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return value.starts_with(prefix);
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return value.ends_with(suffix);
    }
    pattern == value
}

fn is_template(path: &str) -> bool {
    path.contains("{*}") || path.contains("{**}")
}

/// Istio accepts a template only when `*`, `{`, `}` appear nowhere but in whole-segment
/// `{*}`/`{**}` operators, and `{**}` is the last operator.
fn valid_template(path: &str) -> bool {
    let segs: Vec<&str> = path.split('/').collect();
    let ops: Vec<usize> = (0..segs.len())
        .filter(|&i| segs[i] == "{*}" || segs[i] == "{**}")
        .collect();
    segs.iter()
        .all(|s| *s == "{*}" || *s == "{**}" || !s.contains(['*', '{', '}']))
        && ops
            .iter()
            .all(|&i| segs[i] != "{**}" || Some(&i) == ops.last())
}

/// A path template against a path's segments: `{*}` one non-empty segment, `{**}` zero
/// or more.
pub fn template_matches(template: &str, path: &[String]) -> bool {
    let t: Vec<&str> = template.split('/').skip(1).collect();
    fn go(t: &[&str], p: &[String]) -> bool {
        match t.split_first() {
            None => p.is_empty(),
            Some((&"{**}", rest)) => (0..=p.len()).any(|k| go(rest, &p[k..])),
            Some((&"{*}", rest)) => p.first().is_some_and(|s| !s.is_empty()) && go(rest, &p[1..]),
            Some((lit, rest)) => p.first().is_some_and(|s| s == lit) && go(rest, &p[1..]),
        }
    }
    go(&t, path)
}

fn path_matches(pattern: &str, call: &CallView) -> bool {
    if call.path_unknown() {
        return matches!(pattern, "*" | "/*" | "/{**}");
    }
    if is_template(pattern) {
        call.segments()
            .is_some_and(|s| template_matches(pattern, &s))
    } else {
        call.path().is_some_and(|p| string_matches(pattern, &p))
    }
}

fn any(list: &Option<Vec<String>>, f: impl Fn(&str) -> bool) -> Option<bool> {
    list.as_ref().map(|l| l.iter().any(|p| f(p)))
}

fn source_matches(s: &Source, call: &CallView) -> bool {
    let principal = call
        .principal
        .as_deref()
        .and_then(|p| p.strip_prefix("spiffe://"));
    let ns = principal.and_then(principal_namespace);
    let hit = |list: &Option<Vec<String>>, value: Option<&str>| {
        any(list, |p| value.is_some_and(|v| string_matches(p, v)))
    };
    hit(&s.principals, principal).unwrap_or(true)
        && !hit(&s.not_principals, principal).unwrap_or(false)
        && hit(&s.namespaces, ns).unwrap_or(true)
        && !hit(&s.not_namespaces, ns).unwrap_or(false)
}

fn principal_namespace(p: &str) -> Option<&str> {
    let mut parts = p.split('/');
    parts.next()?;
    (parts.next()? == "ns").then_some(())?;
    parts.next()
}

/// `deny`: for a non-HTTP call, a DENY rule's HTTP-only fields are dropped (Istio makes
/// the rule broader), where an ALLOW rule with them never matches.
fn operation_matches(o: &Operation, call: &CallView, deny: bool) -> bool {
    let http_fields = o.methods.is_some()
        || o.not_methods.is_some()
        || o.paths.is_some()
        || o.not_paths.is_some();
    if http_fields && !call.is_http() && !deny {
        return false;
    }
    let port = call.port.map(|p| p.to_string());
    let ports_ok = any(&o.ports, |p| port.as_deref() == Some(p)).unwrap_or(true)
        && !any(&o.not_ports, |p| port.as_deref() == Some(p)).unwrap_or(false);
    if !call.is_http() {
        return ports_ok;
    }
    // An unknown path may be one a `notPaths` excludes: no ALLOW rule vouches for it.
    if call.path_unknown() && !deny && o.not_paths.as_ref().is_some_and(|p| !p.is_empty()) {
        return false;
    }
    ports_ok
        && any(&o.methods, |m| string_matches(m, &call.method)).unwrap_or(true)
        && !any(&o.not_methods, |m| string_matches(m, &call.method)).unwrap_or(false)
        && any(&o.paths, |p| path_matches(p, call)).unwrap_or(true)
        && !any(&o.not_paths, |p| path_matches(p, call)).unwrap_or(false)
}

fn rule_matches(r: &Rule, call: &CallView, deny: bool) -> bool {
    r.from
        .as_ref()
        .is_none_or(|f| f.is_empty() || f.iter().any(|f| source_matches(&f.source, call)))
        && r.to.as_ref().is_none_or(|t| {
            t.is_empty()
                || t.iter()
                    .any(|t| operation_matches(&t.operation, call, deny))
        })
}

/// Every ALLOW rule, named as [`Verdict::Allowed`] names it, with why it is broad (if it is).
pub(super) fn rules(p: &AuthorizationPolicy) -> Vec<(String, Option<String>)> {
    if p.spec.action.as_deref().is_some_and(|a| a != "ALLOW") {
        return Vec::new();
    }
    let doc = format!(
        "AuthorizationPolicy {}/{}",
        namespace(&p.metadata),
        name(&p.metadata)
    );
    let wild = |v: &Option<Vec<String>>| {
        v.as_ref()
            .is_some_and(|v| v.iter().any(|x| x.contains('*')))
    };
    p.spec
        .rules
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, r)| {
            let froms: Vec<_> = r.from.iter().flatten().collect();
            let tos: Vec<_> = r.to.iter().flatten().collect();
            let mut why = Vec::new();
            if froms.is_empty()
                || froms
                    .iter()
                    .any(|f| f.source.principals.is_none() || wild(&f.source.principals))
            {
                why.push("any or wildcard principal");
            }
            if tos.is_empty()
                || tos
                    .iter()
                    .any(|t| t.operation.paths.is_none() || wild(&t.operation.paths))
            {
                why.push("any or wildcard path");
            }
            (
                format!("{doc} rule {i}"),
                (!why.is_empty()).then(|| why.join(", ")),
            )
        })
        .collect()
}
