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

use eastwest_model::{Call, CompactString, Protocol, Workload, format_compact};

use super::NormalizerConfig;
use super::info::{SpanInfo, principal_workload};
use super::peers::PeerNames;
use super::route_cap::RouteCap;
use super::templates::RouteTemplates;
use crate::dedup::CallOrigin;

pub struct Naming {
    routes: RouteCap,
    templates: RouteTemplates,
    peers: PeerNames,
    /// The last workload whose own span was learned (and its pod IP): spans come grouped
    /// by resource, so most spans skip the tables.
    last_own: Option<(Workload, Option<CompactString>)>,
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

    /// The route a side names on a call into `destination` (a workload key): a
    /// template the destination is known to serve, matched from a guessed one.
    fn known_template(&self, info: &SpanInfo, destination: &str) -> Option<CompactString> {
        let route = info.route.as_deref()?;
        if info.route_reported || info.protocol != Protocol::Http {
            return None;
        }
        info.raw_path
            .as_deref()
            .and_then(|raw| self.templates.resolve(destination, raw))
            .or_else(|| self.templates.resolve(destination, route))
            .map(CompactString::from)
    }

    /// The route a side names on a call into `destination`, moved out of the span
    /// being emptied into a call.
    fn take_route(&self, info: &mut SpanInfo, destination: &str) -> Option<CompactString> {
        self.known_template(info, destination)
            .or_else(|| info.route.take())
    }

    /// The request's entry route as a root server span names it.
    pub fn entry_route(&self, info: &SpanInfo) -> CompactString {
        let route = self
            .known_template(info, &info.workload.key())
            .or_else(|| info.route.clone())
            .unwrap_or_else(|| "/".into());
        match info.protocol {
            Protocol::Http => format_compact!("{} {}", info.method, route),
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

    /// The call a caller and its callee (if one answered) make. Both sides are left
    /// emptied: their strings move into the call instead of being copied.
    pub fn build_call(&mut self, caller: &mut SpanInfo, mut callee: Option<&mut SpanInfo>) -> Call {
        let destination = match callee.as_mut() {
            Some(c) => {
                if let Some(peer) = &caller.peer {
                    self.peers
                        .learn_alias(peer, caller.workload.namespace.as_deref(), &c.workload);
                }
                let mut d = std::mem::take(&mut c.workload);
                if d.principal.is_none() {
                    d.principal = caller.destination_principal.take();
                }
                d
            }
            None => self.virtual_peer(caller),
        };
        let destination_key = destination.key();
        let protocol = match (caller.protocol, callee.as_ref().map(|c| c.protocol)) {
            (Protocol::Tcp, Some(p)) => p,
            (p, _) => p,
        };
        // The server side knows its route best (its template, or the path it received);
        // the method comes from the side whose route is taken.
        let callee_route = callee
            .as_mut()
            .filter(|c| c.protocol == protocol)
            .and_then(|c| self.take_route(c, &destination_key));
        let (method_of_callee, route) = match callee_route {
            Some(r) => (true, r),
            None => match self.take_route(caller, &destination_key) {
                Some(r) => (false, r),
                // A callee of another protocol than the call's still names a route.
                None => match callee
                    .as_mut()
                    .and_then(|c| self.take_route(c, &destination_key))
                {
                    Some(r) => (true, r),
                    None => (false, default_route(caller)),
                },
            },
        };
        let method = match callee.as_mut().filter(|_| method_of_callee) {
            Some(c) => std::mem::take(&mut c.method),
            None => std::mem::take(&mut caller.method),
        };
        let mut source = std::mem::take(&mut caller.workload);
        // The callee's view of the connection wins over the caller's claim.
        let mut claimed_principal = None;
        if let Some(observed) = callee.as_mut().and_then(|c| c.source_principal.take()) {
            if let Some(claimed) = source.principal.take()
                && claimed != observed
            {
                claimed_principal = Some(claimed);
            }
            source.principal = Some(observed);
        }
        let route = self.routes.admit(&source.key(), &destination_key, route);
        let callee = callee.as_mut();
        let (
            callee_status,
            callee_error,
            callee_mtls,
            callee_flags,
            callee_request_id,
            callee_bytes,
        ) = match callee {
            Some(c) => (
                c.status,
                c.error,
                c.mtls,
                c.response_flags.take(),
                c.request_id.take(),
                (c.request_bytes, c.response_bytes),
            ),
            None => (None, false, None, None, None, (None, None)),
        };
        Call {
            event_time_ns: caller.start_ns,
            source,
            destination,
            protocol,
            method,
            route,
            status: caller.status.or(callee_status),
            error: caller.error || callee_error,
            duration_ns: caller.duration_ns,
            mtls: caller.mtls.or(callee_mtls),
            trace_id: caller.trace_hex(),
            span_id: SpanInfo::span_hex(caller.span_id),
            entry: None,
            response_flags: caller.response_flags.take().or(callee_flags),
            destination_address: caller.destination_address.take(),
            source_version: caller.version.take(),
            request_id: caller.request_id.take().or(callee_request_id),
            weight: caller.weight,
            claimed_principal,
            // The callee's count wins for both bodies, as its view of the identity does:
            // a compromised caller can write any number into its own span (hide a large
            // read), not into the callee's. The caller's fills in when the callee says
            // nothing (no server span, or one without sizes).
            request_bytes: callee_bytes.0.or(caller.request_bytes),
            response_bytes: callee_bytes.1.or(caller.response_bytes),
        }
    }

    /// The call of a callee whose caller sent no span; the callee is left emptied.
    pub fn build_unknown_caller_call(&mut self, callee: &mut SpanInfo) -> Call {
        let source = callee
            .source_principal
            .as_deref()
            .and_then(principal_workload)
            .unwrap_or_else(|| Workload::new("unknown"));
        let destination_key = callee.workload.key();
        let route = self
            .take_route(callee, &destination_key)
            .unwrap_or_else(|| default_route(callee));
        let route = self.routes.admit(&source.key(), &destination_key, route);
        Call {
            event_time_ns: callee.start_ns,
            source,
            destination: std::mem::take(&mut callee.workload),
            protocol: callee.protocol,
            method: std::mem::take(&mut callee.method),
            route,
            status: callee.status,
            error: callee.error,
            duration_ns: callee.duration_ns,
            mtls: callee.mtls,
            trace_id: callee.trace_hex(),
            span_id: SpanInfo::span_hex(callee.parent_id.unwrap_or_default()),
            entry: None,
            response_flags: callee.response_flags.take(),
            destination_address: None,
            source_version: None,
            request_id: callee.request_id.take(),
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
            call.route = known.into();
        }
    }
}

fn default_route(info: &SpanInfo) -> CompactString {
    match info.protocol {
        Protocol::Http => "/".into(),
        _ => "*".into(),
    }
}
