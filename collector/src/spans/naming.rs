//! Sides → calls: who called whom, on which route, under which identity. The pairing
//! store ([`super::normalizer`]) decides *when* a call is complete; this decides what it
//! says, with what the spans seen so far taught about names and routes:
//!
//! * **Names.** A callee known only from the caller's span (no server span: a timeout, an
//!   uninstrumented callee) is resolved through [`PeerNames`] to the workload its own
//!   spans name; what does not resolve stays a distinct peer.
//! * **Routes.** A route reported by the callee (`http.route`) wins; a raw path is matched
//!   against the templates its callee reported ([`RouteTemplates`]), else templated by its
//!   look. Every path is normalised first ([`super::paths`]). Distinct routes per edge are
//!   capped ([`RouteCap`]).
//! * **Identity.** The peer identity the callee observed on the connection (its
//!   `source.principal` and equivalents: mTLS, so not the caller's to choose) is the
//!   call's source principal. When the caller's own span claimed another one, that claim
//!   is kept in `Call::claimed_principal`: a caller that forges another workload's
//!   `service.name` and principal then presents its real identity under the forged name,
//!   which the detector's identity check reads as `identity_mismatch`.

use eastwest_model::{Call, Protocol, Workload};

use super::NormalizerConfig;
use super::info::{SpanInfo, principal_workload};
use super::peers::PeerNames;
use super::routes::RouteCap;
use super::templates::RouteTemplates;
use crate::dedup::CallOrigin;

pub struct Naming {
    routes: RouteCap,
    templates: RouteTemplates,
    peers: PeerNames,
    /// The last workload whose own span was learned (and its pod IP): spans come grouped
    /// by resource, so most spans skip the tables.
    last_own: Option<(Workload, Option<String>)>,
}

impl Naming {
    pub fn new(config: &NormalizerConfig) -> Self {
        Self {
            routes: RouteCap::new(config.max_routes_per_edge, config.max_edges),
            templates: RouteTemplates::new(config.max_edges, config.max_routes_per_edge),
            peers: PeerNames::new(config.max_edges),
            last_own: None,
        }
    }

    /// Routes reported as `{overflow}` so far.
    pub fn route_overflow(&self) -> u64 {
        self.routes.overflowed
    }

    /// Entries of the peer-name tables, and workloads with known templates.
    pub fn table_sizes(&self) -> (u64, u64) {
        (self.peers.len() as u64, self.templates.len() as u64)
    }

    /// What a span says about its own workload: its names and pod IP, and (for a callee
    /// that reports its route template) one of its routes.
    pub fn learn(&mut self, info: &SpanInfo) {
        let same = self.last_own.as_ref().is_some_and(|(w, ip)| {
            w.service == info.workload.service
                && w.namespace == info.workload.namespace
                && *ip == info.pod_ip
        });
        if !same {
            self.peers.learn_own(&info.workload, info.pod_ip.as_deref());
            let mut w = info.workload.clone();
            w.principal = None;
            self.last_own = Some((w, info.pod_ip.clone()));
        }
        if info.side == super::info::Side::Callee
            && info.protocol == Protocol::Http
            && info.route_reported
            && let Some(route) = &info.route
        {
            self.templates.learn(&info.workload.key(), route);
        }
    }

    /// The route a side names on a call into `destination` (a workload key).
    fn route_of(&self, info: &SpanInfo, destination: &str) -> Option<String> {
        let route = info.route.as_ref()?;
        if info.route_reported || info.protocol != Protocol::Http {
            return Some(route.clone());
        }
        let known = info
            .raw_path
            .as_deref()
            .and_then(|raw| self.templates.resolve(destination, raw))
            .or_else(|| self.templates.resolve(destination, route));
        Some(known.unwrap_or(route).to_string())
    }

    /// The request's entry route as a root server span names it.
    pub fn entry_route(&self, info: &SpanInfo) -> String {
        let route = self
            .route_of(info, &info.workload.key())
            .unwrap_or_else(|| "/".into());
        match info.protocol {
            Protocol::Http => format!("{} {}", info.method, route),
            _ => route,
        }
    }

    /// The destination a caller named when no callee span answered.
    fn virtual_peer(&self, caller: &SpanInfo) -> Workload {
        let caller_ns = caller.workload.namespace.as_deref();
        if let Some(peer) = &caller.peer {
            let is_ip = peer.service.parse::<std::net::IpAddr>().is_ok();
            return self
                .peers
                .resolve(peer, caller_ns)
                .or_else(|| {
                    // A peer named by an IP that no pod reported: try the address the
                    // caller connected to, else keep the IP as the peer.
                    is_ip
                        .then_some(caller.peer_ip.as_deref())
                        .flatten()
                        .and_then(|ip| self.peers.resolve_ip(ip))
                })
                .unwrap_or_else(|| peer.clone());
        }
        caller
            .peer_ip
            .as_deref()
            .and_then(|ip| self.peers.resolve_ip(ip))
            .or_else(|| {
                caller
                    .destination_principal
                    .as_deref()
                    .and_then(principal_workload)
            })
            .unwrap_or_else(|| Workload::new("unknown"))
    }

    pub fn build_call(&mut self, caller: &SpanInfo, callee: Option<&SpanInfo>) -> Call {
        let mut source = caller.workload.clone();
        let mut claimed_principal = None;
        // The callee's view of the connection wins over the caller's claim.
        if let Some(observed) = callee.and_then(|c| c.source_principal.as_ref()) {
            match source.principal.replace(observed.clone()) {
                Some(claimed) if claimed != *observed => claimed_principal = Some(claimed),
                _ => {}
            }
        }
        let destination = match callee {
            Some(c) => {
                if let Some(peer) = &caller.peer {
                    self.peers
                        .learn_alias(peer, caller.workload.namespace.as_deref(), &c.workload);
                }
                let mut d = c.workload.clone();
                if d.principal.is_none() {
                    d.principal = caller.destination_principal.clone();
                }
                d
            }
            None => self.virtual_peer(caller),
        };
        let destination_key = destination.key();
        let protocol = match (caller.protocol, callee.map(|c| c.protocol)) {
            (Protocol::Tcp, Some(p)) => p,
            (p, _) => p,
        };
        // The server side knows its route best (its template, or the path it received).
        let callee_route = callee
            .filter(|c| c.protocol == protocol)
            .and_then(|c| Some((c.method.clone(), self.route_of(c, &destination_key)?)));
        let (method, route) = match (callee_route, self.route_of(caller, &destination_key)) {
            (Some(mr), _) => mr,
            (None, Some(r)) => (caller.method.clone(), r),
            (None, None) => match callee
                .and_then(|c| Some((c.method.clone(), self.route_of(c, &destination_key)?)))
            {
                Some(mr) => mr,
                None => (caller.method.clone(), default_route(caller)),
            },
        };
        let route = self.routes.admit(&source.key(), &destination_key, route);
        Call {
            event_time_ns: caller.start_ns,
            source,
            destination,
            protocol,
            method,
            route,
            status: caller.status.or_else(|| callee.and_then(|c| c.status)),
            error: caller.error || callee.is_some_and(|c| c.error),
            duration_ns: caller.duration_ns,
            mtls: caller.mtls.or_else(|| callee.and_then(|c| c.mtls)),
            trace_id: caller.trace_hex(),
            span_id: SpanInfo::span_hex(caller.span_id),
            entry: None,
            response_flags: caller
                .response_flags
                .clone()
                .or_else(|| callee.and_then(|c| c.response_flags.clone())),
            destination_address: caller.destination_address.clone(),
            source_version: caller.version.clone(),
            request_id: caller
                .request_id
                .clone()
                .or_else(|| callee.and_then(|c| c.request_id.clone())),
            weight: caller.weight,
            claimed_principal,
            // The callee's count wins for both bodies, as its view of the identity does:
            // a compromised caller can write any number into its own span (hide a large
            // read), not into the callee's. The caller's fills in when the callee says
            // nothing (no server span, or one without sizes).
            request_bytes: callee
                .and_then(|c| c.request_bytes)
                .or(caller.request_bytes),
            response_bytes: callee
                .and_then(|c| c.response_bytes)
                .or(caller.response_bytes),
        }
    }

    pub fn build_unknown_caller_call(&mut self, callee: &SpanInfo) -> Call {
        let source = callee
            .source_principal
            .as_deref()
            .and_then(principal_workload)
            .unwrap_or_else(|| Workload::new("unknown"));
        let destination_key = callee.workload.key();
        let route = self
            .route_of(callee, &destination_key)
            .unwrap_or_else(|| default_route(callee));
        let route = self.routes.admit(&source.key(), &destination_key, route);
        Call {
            event_time_ns: callee.start_ns,
            source,
            destination: callee.workload.clone(),
            protocol: callee.protocol,
            method: callee.method.clone(),
            route,
            status: callee.status,
            error: callee.error,
            duration_ns: callee.duration_ns,
            mtls: callee.mtls,
            trace_id: callee.trace_hex(),
            span_id: SpanInfo::span_hex(callee.parent_id.unwrap_or_default()),
            entry: None,
            response_flags: callee.response_flags.clone(),
            destination_address: None,
            source_version: None,
            request_id: callee.request_id.clone(),
            weight: callee.weight,
            claimed_principal: None,
            request_bytes: callee.request_bytes,
            response_bytes: callee.response_bytes,
        }
    }

    /// An access-log call, named like span calls: the reporting workload's name is
    /// learned, a destination named by a host resolves as a virtual peer does, and an
    /// HTTP route is matched against the destination's known templates.
    pub fn name_logged_call(&mut self, call: &mut Call, origin: CallOrigin) {
        let reporter = match origin {
            CallOrigin::InboundLog => &call.destination,
            _ => &call.source,
        };
        if reporter.service != "unknown" {
            self.peers.learn_own(reporter, None);
            self.last_own = None;
        }
        if origin == CallOrigin::OutboundLog
            && let Some(known) = self
                .peers
                .resolve(&call.destination, call.source.namespace.as_deref())
        {
            let principal = call.destination.principal.take();
            call.destination = Workload { principal, ..known };
        }
        if call.protocol == Protocol::Http
            && let Some(known) = self.templates.resolve(&call.destination.key(), &call.route)
        {
            call.route = known.to_string();
        }
    }
}

fn default_route(info: &SpanInfo) -> String {
    match info.protocol {
        Protocol::Http => "/".into(),
        _ => "*".into(),
    }
}
