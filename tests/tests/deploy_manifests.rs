//! The `deploy/` folder (#18 item 5) against what eastwest itself defines: every
//! Kubernetes manifest through the typed bindings of `k8s-openapi` (an unknown or
//! misspelt field fails), probes against the API's routes, ports against the receivers'
//! and API's defaults, the ConfigMap's TOML through eastwest's own config type and
//! validation, the OpenTelemetry Collector configuration and the Istio resources as YAML
//! against the Service and each other, and the image's entrypoint against the mount.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use eastwest_api::SYSTEM_ROUTES;
use eastwest_collector::otlp::{DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR};
use eastwest_runtime::EastwestConfig;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Probe, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde::{Deserialize as _, Serialize};
use serde_json::Value;

const CONFIG_KEY: &str = "eastwest.toml";
/// Where the image's entrypoint reads its config (`--config`).
const CONFIG_PATH: &str = "/etc/eastwest/eastwest.toml";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every YAML document of a file, as JSON values (comments and empty documents dropped).
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    yaml_serde::Deserializer::from_str(&text)
        .map(|doc| {
            let yaml = yaml_serde::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
            serde_json::to_value(yaml).expect("YAML maps to JSON")
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Parses `doc` as `T` and requires that writing it back gives the same document: the
/// bindings skip fields they do not know, so a misspelt or misplaced field shows here.
fn typed<T: DeserializeOwned + Serialize>(doc: &Value, what: &str) -> T {
    let parsed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{what}: does not parse as a Kubernetes object: {e}"));
    let back = serde_json::to_value(&parsed).unwrap();
    let mut lost = Vec::new();
    differences(doc, &back, "", &mut lost);
    assert!(
        lost.is_empty(),
        "{what}: not as the Kubernetes API reads it (misspelt, misplaced or mistyped): {lost:?}"
    );
    parsed
}

/// Paths of `written` that `read_back` lost or changed. (Fields only in `read_back` are
/// the bindings' own: a volume claim template is written back with its kind.)
fn differences(written: &Value, read_back: &Value, path: &str, out: &mut Vec<String>) {
    match (written, read_back) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, x) in a {
                match b.get(key) {
                    Some(y) => differences(x, y, &format!("{path}.{key}"), out),
                    None => out.push(format!("{path}.{key}")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {a} vs {b}")),
        _ => {}
    }
}

/// The manifests of deploy/kubernetes, parsed by kind.
struct Manifests {
    namespace: Namespace,
    config_map: ConfigMap,
    service: Service,
    stateful_set: StatefulSet,
    files: Vec<String>,
}

fn manifests() -> Manifests {
    let dir = deploy_dir().join("kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let (mut namespace, mut config_map, mut service, mut stateful_set) = (None, None, None, None);
    for file in &files {
        for doc in yaml_documents(file) {
            let what = format!("{} ({})", file.display(), doc["kind"]);
            match doc["kind"].as_str() {
                Some("Namespace") => namespace = Some(typed::<Namespace>(&doc, &what)),
                Some("ConfigMap") => config_map = Some(typed::<ConfigMap>(&doc, &what)),
                Some("Service") => service = Some(typed::<Service>(&doc, &what)),
                Some("StatefulSet") => stateful_set = Some(typed::<StatefulSet>(&doc, &what)),
                other => panic!("{what}: a kind this test does not check: {other:?}"),
            }
        }
    }
    Manifests {
        namespace: namespace.expect("a Namespace"),
        config_map: config_map.expect("a ConfigMap"),
        service: service.expect("a Service"),
        stateful_set: stateful_set.expect("a StatefulSet"),
        files: files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect(),
    }
}

impl Manifests {
    fn container(&self) -> &Container {
        let pod = self
            .stateful_set
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref();
        let containers = &pod.expect("a pod spec").containers;
        assert_eq!(containers.len(), 1, "one eastwest container");
        &containers[0]
    }

    fn config_text(&self) -> &str {
        self.config_map
            .data
            .as_ref()
            .and_then(|d| d.get(CONFIG_KEY))
            .unwrap_or_else(|| panic!("the ConfigMap has no {CONFIG_KEY}"))
    }

    /// The ConfigMap's config with the container's environment applied (a Secret's value
    /// stands in as `secret`), as `eastwest serve` would load it in the pod.
    fn pod_config(&self, secret: Option<&str>) -> EastwestConfig {
        let mut config =
            EastwestConfig::from_toml(self.config_text(), Path::new(CONFIG_KEY)).unwrap();
        let env: BTreeMap<String, Option<String>> = self
            .container()
            .env
            .iter()
            .flatten()
            .map(|e| {
                let value = match &e.value_from {
                    Some(from) if from.secret_key_ref.is_some() => secret.map(str::to_owned),
                    Some(other) => panic!("{}: unexpected source {other:?}", e.name),
                    None => e.value.clone(),
                };
                (e.name.clone(), value)
            })
            .collect();
        config.apply_env(|k| env.get(k).cloned().flatten()).unwrap();
        config
    }

    /// The names the Service answers to in the cluster's DNS.
    fn service_names(&self) -> Vec<String> {
        let name = self.service.metadata.name.clone().unwrap();
        let ns = self.service.metadata.namespace.clone().unwrap();
        vec![
            name.clone(),
            format!("{name}.{ns}"),
            format!("{name}.{ns}.svc"),
            format!("{name}.{ns}.svc.cluster.local"),
        ]
    }

    /// The Service port named `name` and the container port it targets.
    fn service_port(&self, name: &str) -> (u16, u16) {
        let ports = self.service.spec.as_ref().unwrap().ports.as_ref().unwrap();
        let port = ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("the Service has no port {name}"));
        let target = self.container_port(port.target_port.as_ref().expect("targetPort"));
        (u16::try_from(port.port).unwrap(), target)
    }

    /// A container port by number or by name.
    fn container_port(&self, port: &IntOrString) -> u16 {
        let n = match port {
            IntOrString::Int(n) => *n,
            IntOrString::String(name) => {
                self.container()
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(name))
                    .unwrap_or_else(|| panic!("the container has no port named {name}"))
                    .container_port
            }
        };
        u16::try_from(n).unwrap()
    }

    fn probe(&self, probe: Option<&Probe>, which: &str) -> (String, u16) {
        let get = probe
            .unwrap_or_else(|| panic!("no {which} probe"))
            .http_get
            .as_ref()
            .unwrap_or_else(|| panic!("the {which} probe is not an HTTP GET"));
        (
            get.path.clone().unwrap_or_default(),
            self.container_port(&get.port),
        )
    }
}

/// Bytes of a Kubernetes quantity (`2Gi`, `1536Mi`, `1G`, plain bytes).
fn quantity_bytes(q: &str) -> u64 {
    let units: [(&str, u64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<u64>().unwrap() * factor;
        }
    }
    q.parse().unwrap_or_else(|_| panic!("quantity {q:?}"))
}

#[test]
fn manifests_are_valid_kubernetes_objects_in_one_namespace() {
    let m = manifests();
    let ns = m.namespace.metadata.name.clone().unwrap();
    for (kind, object_ns) in [
        ("ConfigMap", &m.config_map.metadata.namespace),
        ("Service", &m.service.metadata.namespace),
        ("StatefulSet", &m.stateful_set.metadata.namespace),
    ] {
        assert_eq!(object_ns.as_ref(), Some(&ns), "{kind} namespace");
    }
    // `kubectl apply -f deploy/kubernetes/` applies in name order: the namespace first.
    assert!(
        m.files[0].contains("namespace"),
        "the Namespace's file sorts first: {:?}",
        m.files
    );
    // The Service selects the StatefulSet's pods.
    let spec = m.stateful_set.spec.as_ref().unwrap();
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    let selector = m.service.spec.as_ref().unwrap().selector.clone().unwrap();
    assert!(
        selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        "Service selector {selector:?} vs pod labels {pod_labels:?}"
    );
    assert_eq!(
        spec.service_name.as_deref(),
        m.service.metadata.name.as_deref()
    );
    // One process owns the baseline and the alert store.
    assert_eq!(spec.replicas, Some(1));
}

#[test]
fn the_service_exposes_the_default_ports_the_config_listens_on() {
    let m = manifests();
    let config = m.pod_config(Some("secret"));
    let api_default = EastwestConfig::default().api.addr.port();
    for (name, default, listen) in [
        ("grpc-otlp", DEFAULT_GRPC_ADDR.port(), config.otlp.grpc_addr),
        ("http-otlp", DEFAULT_HTTP_ADDR.port(), config.otlp.http_addr),
        ("http-api", api_default, config.api.addr),
    ] {
        let (port, target) = m.service_port(name);
        assert_eq!(port, default, "Service port {name}");
        assert_eq!(
            target,
            listen.port(),
            "{name} reaches what eastwest listens on"
        );
        // Other pods reach it only if it listens on every interface.
        assert!(listen.ip().is_unspecified(), "{name} listens on {listen}");
    }
    assert_eq!(
        m.service
            .spec
            .as_ref()
            .unwrap()
            .ports
            .as_ref()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn probes_use_the_health_routes_on_the_api_port() {
    let m = manifests();
    let c = m.container();
    let api_port = m.pod_config(Some("secret")).api.addr.port();
    let routes: BTreeSet<&str> = SYSTEM_ROUTES
        .iter()
        .filter(|(method, _)| *method == "get")
        .map(|(_, path)| *path)
        .collect();
    for (probe, which, path) in [
        (c.liveness_probe.as_ref(), "liveness", "/healthz"),
        (c.readiness_probe.as_ref(), "readiness", "/readyz"),
        (c.startup_probe.as_ref(), "startup", "/healthz"),
    ] {
        let (got_path, port) = m.probe(probe, which);
        assert_eq!(got_path, path, "{which} probe path");
        assert!(routes.contains(got_path.as_str()), "{got_path} is served");
        assert_eq!(port, api_port, "{which} probe port");
    }
}

#[test]
fn the_config_map_is_eastwest_config_derived_from_the_example() {
    let m = manifests();
    // The image bakes in the same file.
    assert_eq!(
        m.config_text(),
        read(&deploy_dir().join("eastwest.toml")),
        "deploy/eastwest.toml and the ConfigMap differ"
    );
    // deny_unknown_fields: a misspelt key fails here; then it validates as in the pod.
    let config = m.pod_config(Some("secret"));
    config.validate().unwrap();
    // Without the Secret's token a non-loopback API refuses to start: the Secret is
    // what makes this deployment start, not an insecure switch.
    assert!(!config.api.insecure_no_auth);
    let err = m.pod_config(None).validate().unwrap_err().to_string();
    assert!(err.contains("token"), "{err}");
    // Every Host the Service's clients send passes the rebinding check.
    for name in m.service_names() {
        assert!(
            config.api.allowed_hosts.contains(&name),
            "{name} not allowed"
        );
    }

    // Built from the example: every key it sets exists there with the same value, but
    // for what a cluster needs otherwise.
    let cluster_only = ["api.addr", "data_dir", "otlp.grpc_addr", "otlp.http_addr"];
    let example: toml::Table =
        toml::from_str(&read(&deploy_dir().join("../eastwest.example.toml"))).unwrap();
    let cluster: toml::Table = toml::from_str(m.config_text()).unwrap();
    let mut differing = Vec::new();
    for (key, value) in &cluster {
        let pairs: Vec<(String, &toml::Value, Option<&toml::Value>)> = match value {
            toml::Value::Table(t) => t
                .iter()
                .map(|(k, v)| {
                    let ex = example.get(key).and_then(|s| s.get(k));
                    (format!("{key}.{k}"), v, ex)
                })
                .collect(),
            v => vec![(key.clone(), v, example.get(key))],
        };
        for (path, v, ex) in pairs {
            assert!(ex.is_some(), "{path} is not in eastwest.example.toml");
            if ex != Some(v) {
                differing.push(path);
            }
        }
    }
    differing.sort();
    assert_eq!(differing, cluster_only, "keys that differ from the example");

    // The data dir is the StatefulSet's volume, the config the ConfigMap's mount.
    let mounts: BTreeMap<&str, &str> = m
        .container()
        .volume_mounts
        .iter()
        .flatten()
        .map(|v| (v.mount_path.as_str(), v.name.as_str()))
        .collect();
    let data_dir = config.data_dir.to_str().unwrap();
    let claims = m
        .stateful_set
        .spec
        .as_ref()
        .unwrap()
        .volume_claim_templates
        .as_ref();
    let claim_names: Vec<_> = claims
        .into_iter()
        .flatten()
        .filter_map(|c| c.metadata.name.as_deref())
        .collect();
    assert!(
        mounts
            .get(data_dir)
            .is_some_and(|v| claim_names.contains(v)),
        "{data_dir} is mounted from a volume claim: {mounts:?}"
    );
    let config_dir = Path::new(CONFIG_PATH).parent().unwrap().to_str().unwrap();
    let config_volume = mounts[config_dir];
    let pod = m
        .stateful_set
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == config_volume)
        .unwrap();
    let source = volume
        .config_map
        .as_ref()
        .expect("the config is a ConfigMap");
    assert_eq!(Some(&source.name), m.config_map.metadata.name.as_ref());
    assert!(
        source
            .items
            .iter()
            .flatten()
            .any(|i| i.key == CONFIG_KEY && i.path == CONFIG_KEY)
    );
}

#[test]
fn the_pod_runs_unprivileged_with_only_its_volumes_writable() {
    let m = manifests();
    let pod = m
        .stateful_set
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    let pod_sc = pod.security_context.as_ref().unwrap();
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    assert!(pod_sc.run_as_user.is_some_and(|u| u > 0));
    assert_eq!(
        pod_sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    // The data volume is group-writable by the eastwest user.
    assert_eq!(pod_sc.fs_group, pod_sc.run_as_group);
    let sc = m.container().security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()])
    );
    assert!(sc.capabilities.as_ref().unwrap().add.is_none());
    assert_eq!(
        sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    assert_eq!(pod.automount_service_account_token, Some(false));
    // The config mount is read-only; everything else written is a volume.
    for mount in m.container().volume_mounts.iter().flatten() {
        if mount.mount_path == "/etc/eastwest" {
            assert_eq!(mount.read_only, Some(true));
        }
    }
    // The image's user is the pod's.
    let dockerfile = read(&deploy_dir().join("Dockerfile"));
    let user = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER in the Dockerfile");
    assert_eq!(
        user.split(':').next().unwrap().parse::<i64>().ok(),
        pod_sc.run_as_user,
        "the image's USER is numeric and the pod's runAsUser"
    );
}

#[test]
fn the_memory_limit_leaves_room_beyond_the_ingest_budget() {
    let m = manifests();
    let budget = m.pod_config(Some("secret")).otlp.memory_budget_bytes;
    let resources = m.container().resources.as_ref().expect("resources");
    let limit = resources.limits.as_ref().and_then(|l| l.get("memory"));
    let limit = quantity_bytes(&limit.expect("a memory limit").0);
    let request = resources.requests.as_ref().and_then(|r| r.get("memory"));
    let request = quantity_bytes(&request.expect("a memory request").0);
    // The budget bounds OTLP requests in flight; the learned state lives beside it.
    assert!(
        limit >= budget + budget / 2,
        "memory limit {limit} leaves too little beside the {budget}-byte ingest budget"
    );
    assert!(request <= limit && request > budget, "request {request}");
    assert!(
        resources
            .requests
            .as_ref()
            .is_some_and(|r| r.contains_key("cpu"))
    );
}

#[test]
fn the_image_runs_serve_with_the_mounted_config_and_exposes_the_ports() {
    let dockerfile = read(&deploy_dir().join("Dockerfile"));
    let entrypoint = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("ENTRYPOINT");
    let entrypoint: Vec<String> = serde_json::from_str(entrypoint).expect("exec form");
    assert_eq!(entrypoint, ["eastwest", "serve", "--config", CONFIG_PATH]);
    let exposed: BTreeSet<u16> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|l| l.split_whitespace().map(|p| p.parse::<u16>().unwrap()))
        .collect();
    let expected: BTreeSet<u16> = [
        DEFAULT_GRPC_ADDR.port(),
        DEFAULT_HTTP_ADDR.port(),
        EastwestConfig::default().api.addr.port(),
    ]
    .into();
    assert_eq!(exposed, expected);
    assert!(
        dockerfile.contains(&format!("COPY deploy/eastwest.toml {CONFIG_PATH}")),
        "the image's default config is deploy/eastwest.toml"
    );
    // Multi-stage: the runtime stage is Debian slim, not the toolchain image.
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    assert!(stages.len() >= 2, "{stages:?}");
    assert!(
        stages.last().unwrap().starts_with("debian:") && stages.last().unwrap().contains("slim")
    );
}

/// `host:port` of an exporter endpoint (with or without a scheme).
fn host_port(endpoint: &str) -> (String, u16) {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let rest = rest.split('/').next().unwrap();
    let (host, port) = rest.rsplit_once(':').expect("a port");
    (host.to_string(), port.parse().unwrap())
}

fn collector_config() -> Value {
    let docs = yaml_documents(&deploy_dir().join("otel-collector/config.yaml"));
    assert_eq!(docs.len(), 1);
    docs.into_iter().next().unwrap()
}

#[test]
fn the_collector_sends_traces_and_logs_to_eastwest_and_the_existing_backend() {
    let m = manifests();
    let c = collector_config();
    let exporter = &c["exporters"]["otlp/eastwest"];
    let endpoint = exporter["endpoint"]
        .as_str()
        .expect("otlp/eastwest endpoint");
    let (host, port) = host_port(endpoint);
    assert!(
        m.service_names().contains(&host),
        "{host} is not a name of the eastwest Service"
    );
    assert_eq!(
        port,
        m.service_port("grpc-otlp").0,
        "the Service's gRPC port"
    );
    for pipeline in ["traces", "logs"] {
        let p = &c["service"]["pipelines"][pipeline];
        let exporters: Vec<&str> = p["exporters"]
            .as_array()
            .unwrap_or_else(|| panic!("no {pipeline} pipeline"))
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert!(
            exporters.contains(&"otlp/eastwest"),
            "{pipeline}: {exporters:?}"
        );
        // Next to the backend the user already has, not instead of it.
        assert!(exporters.len() >= 2, "{pipeline}: {exporters:?}");
        for e in &exporters {
            assert!(c["exporters"][e].is_object(), "{e} is not defined");
        }
        for r in p["receivers"].as_array().unwrap() {
            assert!(c["receivers"][r.as_str().unwrap()].is_object(), "{r}");
        }
        for proc in p["processors"].as_array().into_iter().flatten() {
            assert!(
                c["processors"][proc.as_str().unwrap()].is_object(),
                "{proc}"
            );
        }
    }
    // Batches stay below what eastwest accepts in one request.
    let max = c["processors"]["batch"]["send_batch_max_size"]
        .as_u64()
        .unwrap();
    assert!(max > 0 && max <= 16_384, "send_batch_max_size {max}");
}

#[test]
fn istio_sends_spans_and_access_logs_to_the_collector() {
    let dir = deploy_dir().join("istio");
    let telemetry = yaml_documents(&dir.join("telemetry.yaml"));
    let telemetry = &telemetry[0];
    assert_eq!(telemetry["apiVersion"], "telemetry.istio.io/v1");
    assert_eq!(telemetry["kind"], "Telemetry");
    let mesh = yaml_documents(&dir.join("mesh-config.yaml"));
    let mesh = &mesh[0];
    assert_eq!(mesh["apiVersion"], "install.istio.io/v1alpha1");
    assert_eq!(mesh["kind"], "IstioOperator");
    let providers: BTreeMap<&str, &Value> = mesh["spec"]["meshConfig"]["extensionProviders"]
        .as_array()
        .expect("extensionProviders")
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p))
        .collect();
    let names = |section: &str| -> Vec<&str> {
        telemetry["spec"][section]
            .as_array()
            .unwrap_or_else(|| panic!("no {section}"))
            .iter()
            .flat_map(|s| s["providers"].as_array().unwrap())
            .map(|p| p["name"].as_str().unwrap())
            .collect()
    };
    // The collector's OTLP gRPC receiver is where both providers send.
    let (_, collector_port) = host_port(
        collector_config()["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
            .as_str()
            .unwrap(),
    );
    for (section, kind) in [
        ("tracing", "opentelemetry"),
        ("accessLogging", "envoyOtelAls"),
    ] {
        let used = names(section);
        assert!(!used.is_empty(), "{section}");
        for name in used {
            let provider = providers
                .get(name)
                .unwrap_or_else(|| panic!("{section} names {name}, not in meshConfig"));
            let target = &provider[kind];
            assert!(target.is_object(), "{name} is not an {kind} provider");
            assert_eq!(target["port"].as_u64(), Some(u64::from(collector_port)));
            assert!(target["service"].as_str().is_some_and(|s| !s.is_empty()));
        }
    }
    // The access logs carry the caller's identity, which names the source of inbound lines.
    let labels = &providers["otel-access-log"]["envoyOtelAls"]["logFormat"]["labels"];
    assert_eq!(
        labels["downstream_peer_uri_san"],
        "%DOWNSTREAM_PEER_URI_SAN%"
    );
}

#[test]
fn the_readme_says_how_to_run_it_in_a_cluster() {
    let m = manifests();
    let readme = read(&deploy_dir().join("../README.md"));
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Run it in a cluster"))
        .expect("a \"Run it in a cluster\" section");
    // The Secret the StatefulSet reads is the one the README says to create.
    let env = m.container().env.as_ref().unwrap();
    let secret = env
        .iter()
        .find(|e| e.name == "EASTWEST_API_TOKEN")
        .and_then(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
        .expect("EASTWEST_API_TOKEN from a Secret");
    let create = format!(
        "create secret generic {} --from-literal={}=",
        secret.name, secret.key
    );
    assert!(section.contains(&create), "README lacks `{create}`");
    for file in [
        "deploy/Dockerfile",
        "deploy/otel-collector/config.yaml",
        "deploy/istio/",
    ] {
        assert!(
            section.contains(file),
            "README section does not mention {file}"
        );
    }
}
