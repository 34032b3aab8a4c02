//! Request and response body sizes of generated calls: per endpoint a typical size, with
//! jitter per call. Both come from hashes (of the endpoint, of the call's span id), not
//! from the scenario's RNG stream, so adding sizes moved no other generated value: the
//! span ids they hash are themselves drawn from the seeded RNG, so the sizes are just as
//! deterministic.
//!
//! `exfiltration` scales the responses of one known endpoint of one known edge.

use super::topology::{Hop, is_grpc};

/// FNV-1a over a few strings, with a separator so `("ab", "c")` ≠ `("a", "bc")`.
fn hash(parts: &[&[u8]]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for part in parts {
        for b in part.iter().chain(&[0xff]) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Request and response body bytes of one call on `hop` that answered `status`.
/// `call_id` (the client span id) varies the jitter from call to call; `scale` multiplies
/// the response (1 for normal traffic).
pub(crate) fn body_sizes(hop: &Hop, status: u32, call_id: &[u8], scale: u64) -> (u64, u64) {
    let endpoint = hash(&[
        hop.callee.as_bytes(),
        hop.method.as_bytes(),
        hop.path.as_bytes(),
    ]);
    // ±25 % around the endpoint's typical size.
    let jitter = |typical: u64, salt: u8| {
        let r = hash(&[call_id, &[salt]]) % 501;
        typical * (750 + r) / 1000
    };
    let request = if is_grpc(&hop.method, &hop.path) {
        // A protobuf request message: tens to hundreds of bytes.
        jitter(24 + endpoint % 400, 1)
    } else {
        match &*hop.method {
            "GET" | "HEAD" | "DELETE" | "OPTIONS" => 0,
            _ => jitter(120 + endpoint % 3_000, 1),
        }
    };
    let response = if status >= 400 {
        // An error body: a short message.
        jitter(19 + (endpoint >> 16) % 100, 2)
    } else {
        jitter(typical_response(hop, endpoint), 2).saturating_mul(scale.max(1))
    };
    (request, response)
}

/// Whether an endpoint returns a collection (by its name).
pub(crate) fn is_listing(hop: &Hop) -> bool {
    let path = hop.path.to_ascii_lowercase();
    ["list", "search", "query", "/all", "export"]
        .iter()
        .any(|w| path.contains(w))
}

/// An endpoint's usual response, log-spread over endpoints by its hash and shaped by
/// what it does: listings and searches return collections (4–64 KiB), other reads a
/// record or a page (256 B–4 KiB), plain HTTP writes an acknowledgement (64–512 B).
fn typical_response(hop: &Hop, endpoint: u64) -> u64 {
    let listing = is_listing(hop);
    let write = !is_grpc(&hop.method, &hop.path)
        && matches!(&*hop.method, "POST" | "PUT" | "PATCH" | "DELETE");
    let (base, steps) = match (listing, write) {
        (true, _) => (4096u64, 5),
        (false, true) => (64, 4),
        (false, false) => (256, 5),
    };
    (base << ((endpoint >> 8) % steps)) + (endpoint >> 24) % base
}

/// How many times its usual response size an exfiltrating read of `hop` returns:
/// 50–100×, fixed per endpoint.
pub(crate) fn exfil_scale(hop: &Hop) -> u64 {
    50 + hash(&[
        hop.caller.as_bytes(),
        hop.callee.as_bytes(),
        hop.path.as_bytes(),
    ]) % 51
}

#[cfg(test)]
mod tests {
    use super::super::topology::{grpc, h};
    use super::*;

    #[test]
    fn sizes_are_per_endpoint_with_bounded_jitter() {
        let list = grpc(
            "recommendationservice",
            "productcatalogservice",
            3550,
            "/hipstershop.ProductCatalogService/ListProducts",
        );
        let a = body_sizes(&list, 200, &[1; 8], 1);
        assert_eq!(a, body_sizes(&list, 200, &[1; 8], 1), "deterministic");
        let responses: Vec<u64> = (0..=255u8)
            .map(|i| body_sizes(&list, 200, &[i; 8], 1).1)
            .collect();
        let (lo, hi) = (
            *responses.iter().min().unwrap(),
            *responses.iter().max().unwrap(),
        );
        assert!(lo > 0 && hi > lo, "jitter varies sizes: {lo}..{hi}");
        assert!(hi * 3 <= lo * 5, "within ±25 %: {lo}..{hi}");
        assert!(a.0 > 0, "a gRPC request has a message");
        let get = h("frontend", "users", 8080, "GET", "/api/users");
        assert_eq!(body_sizes(&get, 200, &[1; 8], 1).0, 0, "GET has no body");
        let error = body_sizes(&get, 503, &[1; 8], 1).1;
        assert!(error < 150, "error bodies are short: {error}");
        let scaled = body_sizes(&list, 200, &[1; 8], 80).1;
        assert_eq!(scaled, a.1 * 80);
    }
}
