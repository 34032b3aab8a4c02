//! TrainTicket (FudanSELab/train-ticket, the 41-microservice railway booking benchmark):
//! request trees per entry route, hand-written after its services' REST controllers and
//! the calls between them. Every request enters through the `ts-ui-dashboard` nginx,
//! which proxies `/api/v1/<x>service/…` to `ts-<x>-service`; Java services keep their
//! data in per-service MongoDB instances (`ts-<x>-mongo`), the voucher service in MySQL.
//! Namespace `trainticket`, REST routes with path parameters (`{orderId}` …).

use std::borrow::Cow;

use super::topology::{AttackPlan, Entry, Hop, Topology};

const NS: &str = "trainticket";
const UI: &str = "ts-ui-dashboard";

/// Service ports as in TrainTicket's Kubernetes manifests.
fn port(svc: &str) -> u16 {
    match svc {
        "ts-ui-dashboard" => 8080,
        "ts-auth-service" => 12340,
        "ts-user-service" => 12342,
        "ts-verification-code-service" => 15678,
        "ts-route-service" => 11178,
        "ts-contacts-service" => 12347,
        "ts-order-service" => 12031,
        "ts-order-other-service" => 12032,
        "ts-config-service" => 15679,
        "ts-station-service" => 12345,
        "ts-train-service" => 14567,
        "ts-travel-service" => 12346,
        "ts-travel2-service" => 16346,
        "ts-preserve-service" => 14568,
        "ts-preserve-other-service" => 14569,
        "ts-basic-service" => 15680,
        "ts-ticketinfo-service" => 15681,
        "ts-price-service" => 16579,
        "ts-notification-service" => 17853,
        "ts-security-service" => 11188,
        "ts-inside-payment-service" => 18673,
        "ts-execute-service" => 12386,
        "ts-payment-service" => 19001,
        "ts-rebook-service" => 18886,
        "ts-cancel-service" => 18885,
        "ts-assurance-service" => 18888,
        "ts-seat-service" => 18898,
        "ts-travel-plan-service" => 14322,
        "ts-route-plan-service" => 14578,
        "ts-food-service" => 18856,
        "ts-food-map-service" => 18855,
        "ts-consign-service" => 16111,
        "ts-consign-price-service" => 16110,
        "ts-admin-basic-info-service" => 18767,
        "ts-admin-order-service" => 16112,
        "ts-admin-route-service" => 16113,
        "ts-admin-travel-service" => 16114,
        "ts-admin-user-service" => 16115,
        "ts-voucher-service" => 16101,
        "ts-news-service" => 12862,
        "ts-ticket-office-service" => 16108,
        "ts-avatar-service" => 17001,
        _ => 8080,
    }
}

fn r(caller: &'static str, callee: &'static str, route: &'static str) -> Hop {
    let (method, path) = route.split_once(' ').expect("METHOD /path");
    Hop {
        caller: Cow::Borrowed(caller),
        callee: Cow::Borrowed(callee),
        port: port(callee),
        method: Cow::Borrowed(method),
        path: Cow::Borrowed(path),
        db: None,
    }
}

/// A MongoDB call (`ts-order-mongo`, operation, collection).
fn mongo(caller: &'static str, db: &'static str, op: &'static str, coll: &'static str) -> Hop {
    Hop {
        caller: Cow::Borrowed(caller),
        callee: Cow::Borrowed(db),
        port: 27017,
        method: Cow::Borrowed(op),
        path: Cow::Borrowed(coll),
        db: Some("mongodb"),
    }
}

/// An entry through the dashboard: root at `ts-ui-dashboard`, first hop to `svc` on the
/// same route, then `rest`.
fn ui(svc: &'static str, route: &'static str, rest: Vec<Hop>) -> Entry {
    let mut hops = vec![r(UI, svc, route)];
    hops.extend(rest);
    Entry {
        service: Cow::Borrowed(UI),
        route: Cow::Borrowed(route),
        hops,
    }
}

const AUTH: &str = "ts-auth-service";
const USER: &str = "ts-user-service";
const VERIFY: &str = "ts-verification-code-service";
const ROUTE: &str = "ts-route-service";
const CONTACTS: &str = "ts-contacts-service";
const ORDER: &str = "ts-order-service";
const ORDER2: &str = "ts-order-other-service";
const CONFIG: &str = "ts-config-service";
const STATION: &str = "ts-station-service";
const TRAIN: &str = "ts-train-service";
const TRAVEL: &str = "ts-travel-service";
const TRAVEL2: &str = "ts-travel2-service";
const PRESERVE: &str = "ts-preserve-service";
const PRESERVE2: &str = "ts-preserve-other-service";
const BASIC: &str = "ts-basic-service";
const TICKETINFO: &str = "ts-ticketinfo-service";
const PRICE: &str = "ts-price-service";
const NOTIFY: &str = "ts-notification-service";
const SECURITY: &str = "ts-security-service";
const INSIDE_PAY: &str = "ts-inside-payment-service";
const EXECUTE: &str = "ts-execute-service";
const PAYMENT: &str = "ts-payment-service";
const REBOOK: &str = "ts-rebook-service";
const CANCEL: &str = "ts-cancel-service";
const ASSURANCE: &str = "ts-assurance-service";
const SEAT: &str = "ts-seat-service";
const TRAVEL_PLAN: &str = "ts-travel-plan-service";
const ROUTE_PLAN: &str = "ts-route-plan-service";
const FOOD: &str = "ts-food-service";
const FOOD_MAP: &str = "ts-food-map-service";
const CONSIGN: &str = "ts-consign-service";
const CONSIGN_PRICE: &str = "ts-consign-price-service";
const ADMIN_BASIC: &str = "ts-admin-basic-info-service";
const ADMIN_ORDER: &str = "ts-admin-order-service";
const ADMIN_ROUTE: &str = "ts-admin-route-service";
const ADMIN_TRAVEL: &str = "ts-admin-travel-service";
const ADMIN_USER: &str = "ts-admin-user-service";
const VOUCHER: &str = "ts-voucher-service";
const NEWS: &str = "ts-news-service";
const OFFICE: &str = "ts-ticket-office-service";
const AVATAR: &str = "ts-avatar-service";

const STATION_BY_NAME: &str = "GET /api/v1/stationservice/stations/id/{stationName}";
const ORDER_BY_ID: &str = "GET /api/v1/orderservice/order/{orderId}";
const ORDER_STATUS: &str = "GET /api/v1/orderservice/order/status/{orderId}/{status}";

/// ticketinfo → basic → station/train/route/price, as in a trip search.
fn ticket_info(from: &'static str, full: bool) -> Vec<Hop> {
    let mut v = vec![
        r(
            from,
            TICKETINFO,
            "POST /api/v1/ticketinfoservice/ticketinfo",
        ),
        r(TICKETINFO, BASIC, "POST /api/v1/basicservice/basic/travel"),
        r(BASIC, STATION, STATION_BY_NAME),
        mongo(STATION, "ts-station-mongo", "find", "station"),
    ];
    if full {
        v.extend([
            r(
                BASIC,
                TRAIN,
                "GET /api/v1/trainservice/trains/{trainTypeId}",
            ),
            mongo(TRAIN, "ts-train-mongo", "find", "trainType"),
            r(BASIC, ROUTE, "GET /api/v1/routeservice/routes/{routeId}"),
            mongo(ROUTE, "ts-route-mongo", "find", "route"),
        ]);
    }
    v.extend([
        r(
            BASIC,
            PRICE,
            "GET /api/v1/priceservice/prices/{routeId}/{trainType}",
        ),
        mongo(PRICE, "ts-price-mongo", "find", "price_config"),
    ]);
    v
}

fn entries() -> Vec<Entry> {
    let mut search = vec![mongo(TRAVEL, "ts-travel-mongo", "find", "trip")];
    search.extend(ticket_info(TRAVEL, true));
    search.extend([
        r(TRAVEL, SEAT, "POST /api/v1/seatservice/seats/left_tickets"),
        r(SEAT, ORDER, "POST /api/v1/orderservice/order/tickets"),
        mongo(ORDER, "ts-order-mongo", "find", "orders"),
        r(
            SEAT,
            CONFIG,
            "GET /api/v1/configservice/configs/{configName}",
        ),
        mongo(CONFIG, "ts-config-mongo", "find", "config"),
    ]);
    let mut search2 = vec![mongo(TRAVEL2, "ts-travel2-mongo", "find", "trip2")];
    search2.extend(ticket_info(TRAVEL2, false));
    search2.extend([
        r(TRAVEL2, SEAT, "POST /api/v1/seatservice/seats/left_tickets"),
        r(
            SEAT,
            ORDER2,
            "POST /api/v1/orderOtherService/orderOther/tickets",
        ),
        mongo(ORDER2, "ts-order-other-mongo", "find", "orders_other"),
        r(
            SEAT,
            CONFIG,
            "GET /api/v1/configservice/configs/{configName}",
        ),
    ]);
    let mut preserve = vec![
        r(
            PRESERVE,
            SECURITY,
            "GET /api/v1/securityservice/securityConfigs/{accountId}",
        ),
        mongo(SECURITY, "ts-security-mongo", "find", "security_config"),
        r(
            SECURITY,
            ORDER,
            "GET /api/v1/orderservice/order/security/{checkDate}/{accountId}",
        ),
        r(
            SECURITY,
            ORDER2,
            "GET /api/v1/orderOtherService/orderOther/security/{checkDate}/{accountId}",
        ),
        r(
            PRESERVE,
            CONTACTS,
            "GET /api/v1/contactservice/contacts/{contactsId}",
        ),
        mongo(CONTACTS, "ts-contacts-mongo", "find", "contacts"),
        r(PRESERVE, TRAVEL, "POST /api/v1/travelservice/trip_detail"),
        mongo(TRAVEL, "ts-travel-mongo", "find", "trip"),
    ];
    preserve.extend(ticket_info(TRAVEL, false));
    preserve.extend([
        r(TRAVEL, SEAT, "POST /api/v1/seatservice/seats/left_tickets"),
        r(PRESERVE, STATION, STATION_BY_NAME),
        r(PRESERVE, SEAT, "POST /api/v1/seatservice/seats"),
        r(
            SEAT,
            ORDER,
            "GET /api/v1/orderservice/order/{travelDate}/{trainNumber}",
        ),
        r(PRESERVE, ORDER, "POST /api/v1/orderservice/order"),
        mongo(ORDER, "ts-order-mongo", "insert", "orders"),
        r(
            PRESERVE,
            ASSURANCE,
            "GET /api/v1/assuranceservice/assurances/{typeIndex}/{orderId}",
        ),
        mongo(ASSURANCE, "ts-assurance-mongo", "insert", "assurance"),
        r(PRESERVE, FOOD, "POST /api/v1/foodservice/orders"),
        mongo(FOOD, "ts-food-mongo", "insert", "food_order"),
        r(PRESERVE, CONSIGN, "PUT /api/v1/consignservice/consigns"),
        r(
            CONSIGN,
            CONSIGN_PRICE,
            "GET /api/v1/consignpriceservice/consignprice/{weight}/{isWithinRegion}",
        ),
        mongo(CONSIGN, "ts-consign-mongo", "insert", "consign_record"),
        r(PRESERVE, USER, "GET /api/v1/userservice/users/id/{userId}"),
        mongo(USER, "ts-user-mongo", "find", "user"),
        r(
            PRESERVE,
            NOTIFY,
            "POST /api/v1/notifyservice/notification/preserve_success",
        ),
    ]);
    vec![
        ui(
            AUTH,
            "POST /api/v1/users/login",
            vec![
                r(AUTH, VERIFY, "GET /api/v1/verifycode/verify/{verifyCode}"),
                mongo(AUTH, "ts-auth-mongo", "find", "user"),
            ],
        ),
        ui(TRAVEL, "POST /api/v1/travelservice/trips/left", search),
        ui(TRAVEL2, "POST /api/v1/travel2service/trips/left", search2),
        ui(PRESERVE, "POST /api/v1/preserveservice/preserve", preserve),
        ui(
            PRESERVE2,
            "POST /api/v1/preserveotherservice/preserveOther",
            vec![
                r(
                    PRESERVE2,
                    SECURITY,
                    "GET /api/v1/securityservice/securityConfigs/{accountId}",
                ),
                r(
                    PRESERVE2,
                    CONTACTS,
                    "GET /api/v1/contactservice/contacts/{contactsId}",
                ),
                r(
                    PRESERVE2,
                    TRAVEL2,
                    "POST /api/v1/travel2service/trip_detail",
                ),
                r(PRESERVE2, SEAT, "POST /api/v1/seatservice/seats"),
                r(
                    PRESERVE2,
                    ORDER2,
                    "POST /api/v1/orderOtherService/orderOther",
                ),
                mongo(ORDER2, "ts-order-other-mongo", "insert", "orders_other"),
                r(PRESERVE2, USER, "GET /api/v1/userservice/users/id/{userId}"),
                r(
                    PRESERVE2,
                    NOTIFY,
                    "POST /api/v1/notifyservice/notification/preserve_success",
                ),
            ],
        ),
        ui(
            ORDER,
            "POST /api/v1/orderservice/order/refresh",
            vec![
                mongo(ORDER, "ts-order-mongo", "find", "orders"),
                r(
                    ORDER,
                    STATION,
                    "POST /api/v1/stationservice/stations/namelist",
                ),
            ],
        ),
        ui(
            ORDER,
            ORDER_BY_ID,
            vec![mongo(ORDER, "ts-order-mongo", "find", "orders")],
        ),
        ui(
            INSIDE_PAY,
            "POST /api/v1/inside_pay_service/inside_payment",
            vec![
                r(INSIDE_PAY, ORDER, ORDER_BY_ID),
                mongo(INSIDE_PAY, "ts-inside-payment-mongo", "find", "money"),
                r(INSIDE_PAY, PAYMENT, "POST /api/v1/paymentservice/payment"),
                mongo(PAYMENT, "ts-payment-mongo", "insert", "payment"),
                r(INSIDE_PAY, ORDER, ORDER_STATUS),
            ],
        ),
        ui(
            CANCEL,
            "GET /api/v1/cancelservice/cancel/{orderId}/{loginId}",
            vec![
                r(CANCEL, ORDER, ORDER_BY_ID),
                r(CANCEL, ORDER, "PUT /api/v1/orderservice/order"),
                r(
                    CANCEL,
                    INSIDE_PAY,
                    "GET /api/v1/inside_pay_service/inside_payment/drawback/{userId}/{money}",
                ),
                r(CANCEL, USER, "GET /api/v1/userservice/users/id/{userId}"),
                r(
                    CANCEL,
                    NOTIFY,
                    "POST /api/v1/notifyservice/notification/order_cancel_success",
                ),
            ],
        ),
        ui(
            EXECUTE,
            "GET /api/v1/executeservice/execute/collected/{orderId}",
            vec![
                r(EXECUTE, ORDER, ORDER_BY_ID),
                r(EXECUTE, ORDER, ORDER_STATUS),
            ],
        ),
        ui(
            EXECUTE,
            "GET /api/v1/executeservice/execute/execute/{orderId}",
            vec![
                r(EXECUTE, ORDER, ORDER_BY_ID),
                r(EXECUTE, ORDER, ORDER_STATUS),
            ],
        ),
        ui(
            REBOOK,
            "POST /api/v1/rebookservice/rebook",
            vec![
                r(REBOOK, ORDER, ORDER_BY_ID),
                r(REBOOK, TRAVEL, "POST /api/v1/travelservice/trip_detail"),
                r(REBOOK, SEAT, "POST /api/v1/seatservice/seats"),
                r(
                    REBOOK,
                    INSIDE_PAY,
                    "POST /api/v1/inside_pay_service/inside_payment/difference",
                ),
                r(REBOOK, ORDER, "PUT /api/v1/orderservice/order"),
            ],
        ),
        ui(
            TRAVEL_PLAN,
            "POST /api/v1/travelplanservice/travelPlan/cheapest",
            vec![
                r(
                    TRAVEL_PLAN,
                    ROUTE_PLAN,
                    "POST /api/v1/routeplanservice/routePlan/cheapestRoute",
                ),
                r(ROUTE_PLAN, TRAVEL, "POST /api/v1/travelservice/trips/left"),
                r(
                    ROUTE_PLAN,
                    TRAVEL2,
                    "POST /api/v1/travel2service/trips/left",
                ),
                r(
                    TRAVEL_PLAN,
                    SEAT,
                    "POST /api/v1/seatservice/seats/left_tickets",
                ),
                r(
                    TRAVEL_PLAN,
                    STATION,
                    "POST /api/v1/stationservice/stations/namelist",
                ),
            ],
        ),
        ui(
            FOOD,
            "GET /api/v1/foodservice/foods/{date}/{startStation}/{endStation}/{tripId}",
            vec![
                r(
                    FOOD,
                    FOOD_MAP,
                    "GET /api/v1/foodmapservice/trainfoods/{tripId}",
                ),
                mongo(FOOD_MAP, "ts-food-map-mongo", "find", "train_food"),
                r(FOOD, TRAVEL, "GET /api/v1/travelservice/routes/{tripId}"),
                r(FOOD, STATION, STATION_BY_NAME),
            ],
        ),
        ui(
            CONTACTS,
            "GET /api/v1/contactservice/contacts/account/{accountId}",
            vec![mongo(CONTACTS, "ts-contacts-mongo", "find", "contacts")],
        ),
        ui(
            ASSURANCE,
            "GET /api/v1/assuranceservice/assurances/types",
            vec![],
        ),
        ui(
            CONSIGN,
            "GET /api/v1/consignservice/consigns/order/{id}",
            vec![mongo(CONSIGN, "ts-consign-mongo", "find", "consign_record")],
        ),
        ui(
            ADMIN_ORDER,
            "GET /api/v1/adminorderservice/adminorder",
            vec![
                r(ADMIN_ORDER, ORDER, "GET /api/v1/orderservice/order"),
                r(
                    ADMIN_ORDER,
                    ORDER2,
                    "GET /api/v1/orderOtherService/orderOther",
                ),
            ],
        ),
        ui(
            ADMIN_BASIC,
            "GET /api/v1/adminbasicservice/adminbasic/stations",
            vec![r(
                ADMIN_BASIC,
                STATION,
                "GET /api/v1/stationservice/stations",
            )],
        ),
        ui(
            ADMIN_ROUTE,
            "GET /api/v1/adminrouteservice/adminroute",
            vec![r(ADMIN_ROUTE, ROUTE, "GET /api/v1/routeservice/routes")],
        ),
        ui(
            ADMIN_TRAVEL,
            "GET /api/v1/admintravelservice/admintravel",
            vec![
                r(ADMIN_TRAVEL, TRAVEL, "GET /api/v1/travelservice/admin_trip"),
                r(
                    ADMIN_TRAVEL,
                    TRAVEL2,
                    "GET /api/v1/travel2service/admin_trip",
                ),
            ],
        ),
        ui(
            ADMIN_USER,
            "GET /api/v1/adminuserservice/users",
            vec![r(ADMIN_USER, USER, "GET /api/v1/userservice/users")],
        ),
        ui(NEWS, "GET /news", vec![]),
        ui(OFFICE, "GET /office/getAllOffices", vec![]),
        ui(
            VOUCHER,
            "POST /getVoucher",
            vec![Hop {
                port: 3306,
                db: Some("mysql"),
                ..mongo(VOUCHER, "ts-voucher-mysql", "SELECT", "voucher")
            }],
        ),
        ui(AVATAR, "POST /api/v1/avatar", vec![]),
    ]
}

/// The TrainTicket mesh with its attack plan: the compromised workload is the Python
/// `ts-voucher-service` (an internet-facing helper outside the Java stack).
pub(crate) fn trainticket() -> Topology {
    let entries = entries();
    let plan = AttackPlan {
        compromised: Cow::Borrowed(VOUCHER),
        admin: r(VOUCHER, USER, "GET /actuator/env"),
        fan_out: [AUTH, ORDER, PAYMENT, INSIDE_PAY, CONTACTS, SECURITY]
            .iter()
            .map(|s| (Cow::Borrowed(*s), port(s)))
            .collect(),
        probe_success: r(VOUCHER, AUTH, "POST /api/v1/users/login"),
        lateral: r(VOUCHER, PAYMENT, "POST /api/v1/paymentservice/payment"),
        spoof_as: Cow::Borrowed(INSIDE_PAY),
        multi_hop: (
            r(VOUCHER, USER, "GET /api/v1/userservice/users"),
            r(USER, PAYMENT, "POST /api/v1/paymentservice/payment"),
        ),
        // Known edge ts-ui-dashboard → ts-order-service, a route nobody calls.
        new_endpoint: (
            Cow::Borrowed(UI),
            Cow::Borrowed(ORDER_BY_ID),
            vec![],
            r(UI, ORDER, "DELETE /api/v1/orderservice/order/{orderId}"),
        ),
        // The order page reaching preserve → order (both edges known from booking).
        context: Some((
            Cow::Borrowed(UI),
            Cow::Borrowed(ORDER_BY_ID),
            vec![
                r(UI, ORDER, ORDER_BY_ID),
                r(UI, PRESERVE, "POST /api/v1/preserveservice/preserve"),
                r(PRESERVE, ORDER, "POST /api/v1/orderservice/order"),
            ],
        )),
        bulk_read: Some((
            Cow::Borrowed(ORDER_BY_ID),
            mongo(ORDER, "ts-order-mongo", "find", "orders"),
        )),
    };
    Topology {
        name: "trainticket".into(),
        namespace: Cow::Borrowed(NS),
        entries,
        rare: ui(VERIFY, "GET /api/v1/verifycode/generate", vec![]),
        job: Entry {
            service: Cow::Borrowed("ts-order-report-job"),
            route: Cow::Borrowed("POST /jobs/order-report"),
            hops: vec![r(
                "ts-order-report-job",
                ORDER,
                "GET /api/v1/orderservice/order",
            )],
        },
        job_new_step: r(
            "ts-order-report-job",
            PRICE,
            "GET /api/v1/priceservice/prices",
        ),
        literal_entry_urls: false,
        plan: Some(plan),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn trainticket_has_forty_plus_services_and_templated_routes() {
        let t = trainticket();
        let services: BTreeSet<String> = t
            .edges()
            .into_iter()
            .flat_map(|(a, b)| [a, b])
            .filter(|s| !s.ends_with("-mongo") && !s.ends_with("-mysql") && !s.ends_with("-job"))
            .collect();
        assert!(
            services.len() >= 40,
            "{} services: {services:?}",
            services.len()
        );
        assert!(
            t.entries
                .iter()
                .flat_map(|e| &e.hops)
                .any(|h| h.path == "/api/v1/orderservice/order/{orderId}")
        );
        let plan = t.plan.as_ref().unwrap();
        let edges = t.edges();
        // The attacks' premises hold on the request trees.
        assert!(!edges.contains(&(VOUCHER.into(), USER.into())));
        assert!(edges.contains(&(UI.into(), ORDER.into())));
        assert!(edges.contains(&(PRESERVE.into(), ORDER.into())));
        assert!(!edges.contains(&(USER.into(), PAYMENT.into())));
        assert!(edges.contains(&(INSIDE_PAY.into(), PAYMENT.into())));
        for (svc, _) in &plan.fan_out {
            assert!(!edges.contains(&(VOUCHER.into(), svc.to_string())));
        }
    }
}
