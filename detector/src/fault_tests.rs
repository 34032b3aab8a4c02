//! Real faults are not attacks: a broken authorization policy, a 5xx storm or a timeout
//! on calls the caller always makes stay silent, while denials spread over many
//! targets (HTTP or gRPC) are probing.

use eastwest_model::{AlertKind, Protocol};

use super::tests::{call, kinds, learned, run};
use super::*;

const SEC: i64 = 1_000_000_000;

fn grpc(t: i64, src: &str, dst: &str, method: &str, status: u32) -> Call {
    Call {
        protocol: Protocol::Grpc,
        method: "POST".into(),
        status: Some(status),
        error: status != 0,
        ..call(t, src, dst, "POST", method, "GET /cart")
    }
}

/// Enumerating a gRPC API: every method the server lacks answers UNIMPLEMENTED.
fn grpc_scan(t: i64, status: u32) -> Vec<Call> {
    (0..12)
        .map(|i| {
            grpc(
                t + i * SEC,
                "cart",
                "product",
                &format!("shop.Product/Method{i}"),
                status,
            )
        })
        .collect()
}

#[test]
fn grpc_unimplemented_on_many_methods_is_probing() {
    let (mut engine, t) = learned();
    let alerts = run(&mut engine, grpc_scan(t + 60 * SEC, 12));
    assert!(kinds(&alerts).contains(&AlertKind::Probing), "{alerts:#?}");
}

#[test]
fn grpc_successes_on_the_same_methods_are_not_probing() {
    let (mut engine, t) = learned();
    let alerts = run(&mut engine, grpc_scan(t + 60 * SEC, 0));
    assert!(!kinds(&alerts).contains(&AlertKind::Probing), "{alerts:#?}");
}

#[test]
fn a_403_on_the_one_route_a_caller_always_uses_is_silent() {
    let (mut engine, t) = learned();
    // An authorization policy rolled out wrong: every cart request is refused for 10 min.
    let calls = (0..120)
        .map(|i| Call {
            status: Some(403),
            error: true,
            ..call(
                t + i * 5 * SEC,
                "frontend",
                "cart",
                "GET",
                "/cart/{id}",
                "GET /cart",
            )
        })
        .collect();
    let alerts = run(&mut engine, calls);
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn a_5xx_storm_and_timeouts_on_known_calls_are_silent() {
    let (mut engine, t) = learned();
    let mut calls = Vec::new();
    for i in 0..240 {
        let at = t + i * SEC;
        // A 5xx cascade down the cart request tree …
        calls.push(Call {
            status: Some(503),
            error: true,
            response_flags: Some("UF".into()),
            ..call(at, "frontend", "cart", "GET", "/cart/{id}", "GET /cart")
        });
        // … and the product database timing out (no status at all).
        calls.push(Call {
            status: None,
            error: true,
            response_flags: Some("UT".into()),
            duration_ns: 30 * SEC as u64,
            ..call(at, "product", "db", "SELECT", "products", "GET /product")
        });
    }
    let alerts = run(&mut engine, calls);
    assert!(alerts.is_empty(), "{alerts:#?}");
}
