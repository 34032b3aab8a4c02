//! A small rule set the unit tests share: a shop namespace where `frontend` calls
//! `cart` over gRPC and `users` over HTTP (a templated route), and `jobs` talks TCP to
//! `db` once a day; and calls between shop workloads as the matchers see them.

use std::collections::BTreeSet;

use eastwest_model::Protocol;

use crate::r#match::CallView;
use crate::names::OVERFLOW_ROUTE;
use crate::rules::{Peer, Rule, RuleSet, RuleSource, WorkloadRules};

pub fn peer(service: &str) -> Peer {
    Peer {
        key: format!("{service}.shop"),
        service: service.into(),
        namespace: Some("shop".into()),
        principals: BTreeSet::from([format!("spiffe://cluster.local/ns/shop/sa/{service}")]),
    }
}

fn rule(source: &str, protocol: Protocol, method: &str, route: &str, port: u16) -> Rule {
    Rule {
        source: peer(source),
        protocol,
        method: method.into(),
        route: route.into(),
        port: Some(port),
        calls: 10.0,
        first_seen_ns: 1_000,
        last_seen_ns: 2_000,
    }
}

pub fn shop() -> RuleSet {
    let dest = |s: &str, rules: Vec<Rule>| WorkloadRules {
        destination: Peer {
            principals: BTreeSet::new(),
            ..peer(s)
        },
        rules,
    };
    RuleSet {
        from: RuleSource::History {
            since: None,
            until: None,
        },
        workloads: vec![
            dest(
                "cart",
                vec![rule(
                    "frontend",
                    Protocol::Grpc,
                    "POST",
                    "hipstershop.CartService/GetCart",
                    7070,
                )],
            ),
            dest(
                "users",
                vec![
                    rule("frontend", Protocol::Http, "GET", "/users/{id}", 8080),
                    rule("frontend", Protocol::Http, "POST", "/users", 8080),
                    rule("admin", Protocol::Http, "DELETE", "/users/{id}", 8080),
                ],
            ),
            dest(
                "db",
                vec![rule("jobs", Protocol::Db, "SELECT", "orders", 5432)],
            ),
        ],
        excluded: Vec::new(),
    }
}

/// A call from `src` to `dst` in the shop, with `src`'s principal: HTTP for a path (or
/// the overflow stand-in), gRPC otherwise.
pub fn call(src: &str, dst: &str, method: &str, route: &str, port: u16) -> CallView {
    CallView {
        source_service: src.into(),
        source_namespace: Some("shop".into()),
        principal: Some(format!("spiffe://cluster.local/ns/shop/sa/{src}").into()),
        destination_service: dst.into(),
        destination_namespace: Some("shop".into()),
        protocol: if route.starts_with('/') || route == OVERFLOW_ROUTE {
            Protocol::Http
        } else {
            Protocol::Grpc
        },
        method: method.into(),
        route: route.into(),
        port: Some(port),
    }
}
