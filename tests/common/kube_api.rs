//! A stand-in Kubernetes API server for pods, namespaces, nodes and
//! Leases: `GET /api/v1/pods`, `/api/v1/namespaces` and `/api/v1/nodes`,
//! list and watch, with the
//! real wire format (a `PodList`/`NamespaceList` with
//! `metadata.resourceVersion`; a watch as newline-delimited
//! `{"type": "ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR", "object": …}`),
//! one resourceVersion sequence for both (as etcd's revision),
//! `410 Gone` (`ERROR` with an `Expired` Status) for a watch from a
//! compacted resourceVersion, 5xx answers on demand, and an outage mode.
//! It serves one or several nodes (the agents of a cluster): pod requests
//! only when their field selector is `spec.nodeName=<one of its nodes>`
//! (and then only that node's pods), node requests only with
//! `metadata.name=<one of its nodes>`, namespace requests only without one
//! (400 otherwise), and records every request.
//!
//! Secrets: get (403 on demand, as ferro's default RBAC has no rule for
//! them).
//!
//! Events (`events.k8s.io/v1`, all namespaces or one): list (with
//! `limit`/`continue` pages) and watch. ConfigMaps: get, create and
//! replace with the Lease's conflict rules, data of strings only and at
//! most 1 MiB, or 403 on demand (as without the RBAC rule).
//!
//! Leases (`coordination.k8s.io/v1`, for leader election): get (404
//! `NotFound` when there is none), create (409 `AlreadyExists`) and
//! replace, which is refused with 409 `Conflict` unless the body's
//! `metadata.resourceVersion` is the Lease's current one, as the API
//! server's optimistic concurrency does; `acquireTime`/`renewTime` must be
//! RFC 3339 with microseconds (`MicroTime`). Every write is kept in order.
//!
//! Formats: <https://kubernetes.io/docs/reference/using-api/api-concepts/>.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

/// What a client asked for.
#[derive(Clone, Debug)]
pub struct Request {
    /// `pods`, `namespaces`, `nodes` or `leases`.
    pub resource: &'static str,
    /// `list`, `watch`, `get`, `create` or `update`.
    pub verb: &'static str,
    pub watch: bool,
    pub field_selector: Option<String>,
    pub label_selector: Option<String>,
    pub resource_version: Option<String>,
    pub status: u16,
}

#[derive(Default)]
struct Pods {
    nodes: Vec<String>,
    /// ConfigMaps by `(namespace, name)`.
    config_maps: BTreeMap<(String, String), Value>,
    /// ConfigMaps may not be read or written (403), as without RBAC.
    config_maps_forbidden: bool,
    /// Secrets by `(namespace, name)`, and whether reading them is refused.
    secrets: BTreeMap<(String, String), Value>,
    secrets_forbidden: bool,
    /// Leases by `(namespace, name)`.
    leases: BTreeMap<(String, String), Value>,
    /// Every Lease as written, in order.
    lease_writes: Vec<Value>,
    /// Current objects by resource (`pods`, `namespaces`), then uid, each
    /// with its `metadata.resourceVersion`.
    current: BTreeMap<&'static str, BTreeMap<String, Value>>,
    rv: u64,
    /// `(resourceVersion, resource, type, object)` after `compacted`.
    history: Vec<(u64, &'static str, &'static str, Value)>,
    /// A watch from an older resourceVersion gets 410.
    compacted: u64,
    down: bool,
    fail_next: usize,
    requests: Vec<Request>,
    /// Objects sent, by resource: list items and watch events.
    sent: BTreeMap<&'static str, usize>,
}

#[derive(Clone)]
struct Shared {
    pods: Arc<Mutex<Pods>>,
    /// Wakes watches when an event was recorded.
    notify: broadcast::Sender<()>,
    /// Bumped to end every open watch (as an API server restart or a load
    /// balancer's idle timeout would).
    close: watch::Sender<u64>,
    bookmark_every: Duration,
}

pub struct KubeApi {
    pub addr: SocketAddr,
    shared: Shared,
}

impl KubeApi {
    /// Serves the pods of `node` on 127.0.0.1.
    pub async fn start(node: &str) -> KubeApi {
        Self::start_nodes(&[node]).await
    }

    /// Serves the pods of each of `nodes`, to the agent of that node.
    pub async fn start_nodes(nodes: &[&str]) -> KubeApi {
        let shared = Shared {
            pods: Arc::new(Mutex::new(Pods {
                nodes: nodes.iter().map(|n| n.to_string()).collect(),
                rv: 1000,
                ..Default::default()
            })),
            notify: broadcast::channel(64).0,
            close: watch::Sender::new(0),
            bookmark_every: Duration::from_millis(300),
        };
        let app = axum::Router::new()
            .route(
                "/api/v1/pods",
                axum::routing::get(|state, query| serve(state, query, "pods")),
            )
            .route(
                "/api/v1/namespaces",
                axum::routing::get(|state, query| serve(state, query, "namespaces")),
            )
            .route(
                "/api/v1/nodes",
                axum::routing::get(|state, query| serve(state, query, "nodes")),
            )
            .route(
                "/apis/discovery.k8s.io/v1/endpointslices",
                axum::routing::get(|state, query| serve(state, query, "endpointslices")),
            )
            .route(
                "/api/v1/services",
                axum::routing::get(|state, query| serve(state, query, "services")),
            )
            .route(
                "/apis/monitoring.coreos.com/v1/servicemonitors",
                axum::routing::get(|state, query| serve(state, query, "servicemonitors")),
            )
            .route(
                "/apis/monitoring.coreos.com/v1/podmonitors",
                axum::routing::get(|state, query| serve(state, query, "podmonitors")),
            )
            .route(
                "/apis/events.k8s.io/v1/events",
                axum::routing::get(|state, query| serve(state, query, "events")),
            )
            .route(
                "/apis/events.k8s.io/v1/namespaces/{namespace}/events",
                axum::routing::get(
                    |state, axum::extract::Path(namespace): axum::extract::Path<String>, query| {
                        serve_in(state, query, "events", Some(namespace))
                    },
                ),
            )
            .route(
                "/api/v1/namespaces/{namespace}/configmaps",
                axum::routing::post(|state, path, axum::Json(body)| {
                    create_one(state, path, One::ConfigMap, body)
                }),
            )
            .route(
                "/api/v1/namespaces/{namespace}/configmaps/{name}",
                axum::routing::get(|state, path| get_one(state, path, One::ConfigMap)).put(
                    |state, path, axum::Json(body)| replace_one(state, path, One::ConfigMap, body),
                ),
            )
            .route(
                "/api/v1/namespaces/{namespace}/secrets/{name}",
                axum::routing::get(|state, path| get_one(state, path, One::Secret)),
            )
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases",
                axum::routing::post(|state, path, axum::Json(body)| {
                    create_one(state, path, One::Lease, body)
                }),
            )
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}",
                axum::routing::get(|state, path| get_one(state, path, One::Lease)).put(
                    |state, path, axum::Json(body)| replace_one(state, path, One::Lease, body),
                ),
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        KubeApi { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn record(&self, resource: &'static str, kind: &'static str, mut object: Value) {
        {
            let mut p = self.shared.pods.lock().unwrap();
            p.rv += 1;
            let rv = p.rv;
            object["metadata"]["resourceVersion"] = json!(rv.to_string());
            let uid = object["metadata"]["uid"].as_str().unwrap().to_string();
            let current = p.current.entry(resource).or_default();
            if kind == "DELETED" {
                current.remove(&uid);
            } else {
                current.insert(uid, object.clone());
            }
            p.history.push((rv, resource, kind, object));
        }
        let _ = self.shared.notify.send(());
    }

    pub fn add(&self, pod: Value) {
        self.record("pods", "ADDED", pod);
    }

    pub fn modify(&self, pod: Value) {
        self.record("pods", "MODIFIED", pod);
    }

    pub fn delete(&self, uid: &str) {
        let pod = self.shared.pods.lock().unwrap().current["pods"]
            .get(uid)
            .cloned();
        self.record("pods", "DELETED", pod.expect("deleting a pod that exists"));
    }

    pub fn add_node(&self, node: Value) {
        self.record("nodes", "ADDED", node);
    }

    pub fn add_namespace(&self, namespace: Value) {
        self.record("namespaces", "ADDED", namespace);
    }

    pub fn modify_namespace(&self, namespace: Value) {
        self.record("namespaces", "MODIFIED", namespace);
    }

    /// Deletes `uid` while every watch is cut and history is compacted past
    /// it: a watcher can only learn of it by a fresh list after `410 Gone`.
    pub fn delete_unseen(&self, uid: &str) {
        {
            let mut p = self.shared.pods.lock().unwrap();
            p.rv += 1;
            p.current.entry("pods").or_default().remove(uid);
            p.compacted = p.rv;
            p.history.clear();
        }
        self.shared.close.send_modify(|g| *g += 1);
    }

    /// The API server goes away (503 to everything, watches cut) or comes back.
    pub fn set_down(&self, down: bool) {
        self.shared.pods.lock().unwrap().down = down;
        if down {
            self.shared.close.send_modify(|g| *g += 1);
        }
    }

    /// Answers the next `n` requests with 500.
    pub fn fail_next(&self, n: usize) {
        self.shared.pods.lock().unwrap().fail_next = n;
    }

    /// Ends every open watch, as an idle timeout would.
    pub fn cut_watches(&self) {
        self.shared.close.send_modify(|g| *g += 1);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.pods.lock().unwrap().requests.clone()
    }

    /// Objects of `resource` sent so far (list items and watch events).
    pub fn objects_sent(&self, resource: &str) -> usize {
        self.shared
            .pods
            .lock()
            .unwrap()
            .sent
            .get(resource)
            .copied()
            .unwrap_or(0)
    }

    /// The Lease `namespace/name` as it is now.
    pub fn lease(&self, namespace: &str, name: &str) -> Option<Value> {
        self.shared
            .pods
            .lock()
            .unwrap()
            .leases
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Adds an object of `resource` (`services`, `servicemonitors`,
    /// `podmonitors`, …).
    pub fn add_object(&self, resource: &'static str, object: Value) {
        self.record(resource, "ADDED", object);
    }

    pub fn modify_object(&self, resource: &'static str, object: Value) {
        self.record(resource, "MODIFIED", object);
    }

    pub fn delete_object(&self, resource: &'static str, uid: &str) {
        let object = self.shared.pods.lock().unwrap().current[resource]
            .get(uid)
            .cloned();
        self.record(
            resource,
            "DELETED",
            object.expect("deleting an object that exists"),
        );
    }

    pub fn add_event(&self, event: Value) {
        self.record("events", "ADDED", event);
    }

    pub fn modify_event(&self, event: Value) {
        self.record("events", "MODIFIED", event);
    }

    pub fn delete_event(&self, uid: &str) {
        let event = self.shared.pods.lock().unwrap().current["events"]
            .get(uid)
            .cloned();
        self.record(
            "events",
            "DELETED",
            event.expect("deleting an event that exists"),
        );
    }

    /// Compacts history and cuts every watch: a watch resumed from an
    /// earlier resourceVersion gets `410 Gone`.
    pub fn compact(&self) {
        {
            let mut p = self.shared.pods.lock().unwrap();
            // A change that only the compacted history had.
            p.rv += 1;
            p.compacted = p.rv;
            p.history.clear();
        }
        self.shared.close.send_modify(|g| *g += 1);
    }

    /// The ConfigMap `namespace/name` as it is now.
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<Value> {
        self.shared
            .pods
            .lock()
            .unwrap()
            .config_maps
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Creates or replaces the ConfigMap `namespace/name` with `data`.
    pub fn put_config_map(&self, namespace: &str, name: &str, data: Value) {
        let map = json!({"metadata": {"name": name}, "data": data});
        let mut p = self.shared.pods.lock().unwrap();
        accept(&mut p, One::ConfigMap, namespace, map).expect("a valid ConfigMap");
    }

    /// Creates or replaces the Secret `namespace/name` with `data` (its
    /// values as written: base64).
    pub fn put_secret(&self, namespace: &str, name: &str, data: Value) {
        let secret = json!({"metadata": {"name": name}, "type": "Opaque", "data": data});
        let mut p = self.shared.pods.lock().unwrap();
        accept(&mut p, One::Secret, namespace, secret).expect("a valid Secret");
    }

    /// Secrets answer 403 (as without an RBAC rule for them) or not.
    pub fn forbid_secrets(&self, forbidden: bool) {
        self.shared.pods.lock().unwrap().secrets_forbidden = forbidden;
    }

    /// ConfigMaps answer 403 (as without the RBAC rule) or not.
    pub fn forbid_config_maps(&self, forbidden: bool) {
        self.shared.pods.lock().unwrap().config_maps_forbidden = forbidden;
    }

    /// Every Lease write (create or replace) so far, in order.
    pub fn lease_writes(&self) -> Vec<Value> {
        self.shared.pods.lock().unwrap().lease_writes.clone()
    }
}

/// `[kubernetes]` for the agent of `node` against `api`, with a
/// `[kubernetes.leader]` on a Lease in `lease_namespace` when given: short
/// timings for tests (4 s, 3 s, 500 ms; client-go's are 15 s, 10 s, 2 s).
pub fn kubernetes_toml(api: &KubeApi, node: &str, lease_namespace: Option<&str>) -> String {
    let mut toml = format!(
        "[kubernetes]\nnode_name = \"{node}\"\napi_server = \"{}\"\n",
        api.url()
    );
    if let Some(namespace) = lease_namespace {
        toml.push_str(&format!(
            "[kubernetes.leader]\nlease_name = \"ferro-leader\"\nlease_namespace = \"{namespace}\"\nidentity = \"ferro-{node}\"\nlease_duration = \"4s\"\nrenew_deadline = \"3s\"\nretry_period = \"500ms\"\n"
        ));
    }
    toml
}

/// A `metav1.Status` body.
fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code
    })
}

fn answer(code: StatusCode, body: Value) -> Response {
    (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn serve(
    state: State<Shared>,
    query: Query<HashMap<String, String>>,
    resource: &'static str,
) -> Response {
    serve_in(state, query, resource, None).await
}

/// A list or watch of `resource`, of one namespace or of all.
async fn serve_in(
    State(shared): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    resource: &'static str,
    namespace: Option<String>,
) -> Response {
    let watching = matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
    let field_selector = q.get("fieldSelector").cloned();
    let mut p = shared.pods.lock().unwrap();
    // Pods of one node, that node itself; namespaces are not per node.
    let prefix = match resource {
        "pods" => Some("spec.nodeName="),
        "nodes" => Some("metadata.name="),
        _ => None,
    };
    let node = match (prefix, &field_selector) {
        (Some(prefix), Some(selector)) => selector
            .strip_prefix(prefix)
            .filter(|n| p.nodes.iter().any(|known| known == n))
            .map(str::to_string),
        _ => None,
    };
    let selector_ok = match prefix {
        Some(_) => node.is_some(),
        None => field_selector.is_none(),
    };
    let (code, body) = if p.down {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(status(
                503,
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            )),
        )
    } else if p.fail_next > 0 {
        p.fail_next -= 1;
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(status(
                500,
                "InternalError",
                "etcdserver: request timed out",
            )),
        )
    } else if !selector_ok {
        (
            StatusCode::BAD_REQUEST,
            Some(status(
                400,
                "BadRequest",
                &format!(
                    "this test server serves {resource} only with fieldSelector={}<one of {:?}>",
                    prefix.unwrap_or("(none)"),
                    p.nodes
                ),
            )),
        )
    } else {
        (StatusCode::OK, None)
    };
    p.requests.push(Request {
        resource,
        verb: if watching { "watch" } else { "list" },
        watch: watching,
        field_selector,
        label_selector: q.get("labelSelector").cloned(),
        resource_version: q.get("resourceVersion").cloned(),
        status: code.as_u16(),
    });
    if let Some(body) = body {
        return answer(code, body);
    }
    let labels = match q.get("labelSelector").map(|t| label_selector(t)) {
        Some(Ok(parsed)) => Some(parsed),
        Some(Err(text)) => {
            return answer(
                StatusCode::BAD_REQUEST,
                status(
                    400,
                    "BadRequest",
                    &format!("unable to parse requirement: {text}"),
                ),
            );
        }
        None => None,
    };
    let scope = Scope {
        node,
        namespace: namespace.clone(),
        labels,
    };
    if !watching {
        let items: Vec<Value> = p
            .current
            .get(resource)
            .map(|c| {
                c.values()
                    .filter(|o| scope.holds(resource, o))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        // Pages (`limit`, `continue`): the token is the offset into the
        // list (the objects do not change between pages in these tests).
        let offset: usize = q
            .get("continue")
            .and_then(|c| c.strip_prefix("offset-"))
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        let limit: usize = q
            .get("limit")
            .and_then(|l| l.parse().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let end = offset.saturating_add(limit).min(items.len());
        *p.sent.entry(resource).or_default() += end.saturating_sub(offset);
        let mut metadata = json!({"resourceVersion": p.rv.to_string()});
        if end < items.len() {
            metadata["continue"] = json!(format!("offset-{end}"));
        }
        let list = json!({
            "kind": format!("{}List", kind_of(resource)),
            "apiVersion": api_version_of(resource),
            "metadata": metadata,
            "items": items[offset.min(end)..end]
        });
        return answer(StatusCode::OK, list);
    }
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(p.rv);
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    drop(p);
    let (tx, rx) = mpsc::channel::<Result<bytes::Bytes, std::convert::Infallible>>(16);
    tokio::spawn(stream_watch(shared, resource, scope, from, bookmarks, tx));
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

/// What a list or a watch covers: a node's pods or the node itself, and
/// one namespace's objects or all.
#[derive(Clone)]
struct Scope {
    node: Option<String>,
    namespace: Option<String>,
    /// `key=value` or `key in (a,b)`, as a label selector.
    labels: Option<(String, Vec<String>)>,
}

/// The two label selector forms the stand-in takes; `Err` for others.
fn label_selector(text: &str) -> Result<(String, Vec<String>), String> {
    if let Some((key, rest)) = text.split_once(" in (") {
        let values = rest.strip_suffix(')').ok_or_else(|| text.to_string())?;
        return Ok((
            key.trim().to_string(),
            values.split(',').map(|v| v.trim().to_string()).collect(),
        ));
    }
    match text.split_once('=') {
        Some((key, value)) if !key.contains(['!', ' ']) => {
            Ok((key.to_string(), vec![value.to_string()]))
        }
        _ => Err(text.to_string()),
    }
}

impl Scope {
    fn holds(&self, resource: &str, object: &Value) -> bool {
        let on_node = match (resource, &self.node) {
            ("pods", Some(node)) => object["spec"]["nodeName"] == node.as_str(),
            ("nodes", Some(node)) => object["metadata"]["name"] == node.as_str(),
            _ => true,
        };
        let in_namespace = self
            .namespace
            .as_ref()
            .is_none_or(|ns| object["metadata"]["namespace"] == ns.as_str());
        let labelled = self.labels.as_ref().is_none_or(|(key, values)| {
            object["metadata"]["labels"][key]
                .as_str()
                .is_some_and(|v| values.iter().any(|w| w == v))
        });
        on_node && in_namespace && labelled
    }
}

/// An answer other than success: its status and `metav1.Status` body.
type Refusal = (StatusCode, Value);

/// Objects read and written one at a time: Leases and ConfigMaps.
#[derive(Clone, Copy)]
enum One {
    Lease,
    ConfigMap,
    Secret,
}

impl One {
    fn resource(self) -> &'static str {
        match self {
            One::Lease => "leases",
            One::ConfigMap => "configmaps",
            One::Secret => "secrets",
        }
    }

    /// How the API server names it in messages.
    fn what(self) -> &'static str {
        match self {
            One::Lease => "leases.coordination.k8s.io",
            One::ConfigMap => "configmaps",
            One::Secret => "secrets",
        }
    }

    fn map(self, p: &mut Pods) -> &mut BTreeMap<(String, String), Value> {
        match self {
            One::Lease => &mut p.leases,
            One::ConfigMap => &mut p.config_maps,
            One::Secret => &mut p.secrets,
        }
    }

    /// Checks a body as the API server validates it.
    fn invalid(self, object: &Value) -> Option<String> {
        if object["metadata"]["name"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            return Some("metadata.name: Required value".into());
        }
        match self {
            One::Lease => {
                let spec = &object["spec"];
                let ok = is_micro_time(&spec["acquireTime"])
                    && is_micro_time(&spec["renewTime"])
                    && (spec["leaseDurationSeconds"].is_null()
                        || spec["leaseDurationSeconds"].as_i64().is_some_and(|d| d > 0));
                (!ok).then(|| format!("Lease is invalid: {object}"))
            }
            One::Secret => None,
            One::ConfigMap => {
                let strings = object["data"]
                    .as_object()
                    .is_none_or(|d| d.values().all(Value::is_string));
                if !strings {
                    Some("ConfigMap is invalid: data values must be strings".into())
                } else if object["data"].to_string().len() > 1024 * 1024 {
                    Some(
                        "ConfigMap is invalid: []: Too long: must have at most 1048576 bytes"
                            .into(),
                    )
                } else {
                    None
                }
            }
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            One::Lease => "coordination.k8s.io/v1",
            One::ConfigMap | One::Secret => "v1",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            One::Lease => "Lease",
            One::ConfigMap => "ConfigMap",
            One::Secret => "Secret",
        }
    }
}

/// The state a request for `one` sees, or the answer when the server is
/// down, told to fail, or (ConfigMaps) forbidden; the request is recorded.
fn gate<'a>(
    shared: &'a Shared,
    one: One,
    verb: &'static str,
) -> Result<std::sync::MutexGuard<'a, Pods>, Refusal> {
    let mut p = shared.pods.lock().unwrap();
    let failure = if p.down {
        Some((
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request".to_string(),
        ))
    } else if p.fail_next > 0 {
        p.fail_next -= 1;
        Some((500, "InternalError", "etcdserver: request timed out".into()))
    } else if (matches!(one, One::ConfigMap) && p.config_maps_forbidden)
        || (matches!(one, One::Secret) && p.secrets_forbidden)
    {
        let resource = one.resource();
        Some((
            403,
            "Forbidden",
            format!(
                "{resource} is forbidden: User \"system:serviceaccount:ferro:ferro\" cannot {verb} resource \"{resource}\" in API group \"\""
            ),
        ))
    } else {
        None
    };
    p.requests.push(Request {
        resource: one.resource(),
        verb,
        watch: false,
        field_selector: None,
        label_selector: None,
        resource_version: None,
        status: failure.as_ref().map_or(200, |(code, _, _)| *code),
    });
    match failure {
        Some((code, reason, message)) => Err((
            StatusCode::from_u16(code).unwrap(),
            status(code, reason, &message),
        )),
        None => Ok(p),
    }
}

/// `MicroTime`'s wire form: `2006-01-02T15:04:05.000000Z`.
fn is_micro_time(value: &Value) -> bool {
    value.is_null()
        || value.as_str().is_some_and(|t| {
            let b = t.as_bytes();
            b.len() == 27
                && b[10] == b'T'
                && b[19] == b'.'
                && b[26] == b'Z'
                && b[20..26].iter().all(u8::is_ascii_digit)
        })
}

/// Checks a body; stamps it with the next resourceVersion, keeps it, and
/// keeps every Lease write in order.
fn accept(p: &mut Pods, one: One, namespace: &str, mut object: Value) -> Result<Value, Refusal> {
    if let Some(message) = one.invalid(&object) {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            status(422, "Invalid", &message),
        ));
    }
    p.rv += 1;
    object["apiVersion"] = json!(one.api_version());
    object["kind"] = json!(one.kind());
    object["metadata"]["namespace"] = json!(namespace);
    object["metadata"]["resourceVersion"] = json!(p.rv.to_string());
    if matches!(one, One::Lease) {
        p.lease_writes.push(object.clone());
    }
    let name = object["metadata"]["name"].as_str().unwrap().to_string();
    one.map(p)
        .insert((namespace.to_string(), name), object.clone());
    Ok(object)
}

fn not_found(one: One, name: &str) -> Response {
    answer(
        StatusCode::NOT_FOUND,
        status(
            404,
            "NotFound",
            &format!("{} \"{name}\" not found", one.what()),
        ),
    )
}

async fn get_one(
    State(shared): State<Shared>,
    axum::extract::Path((namespace, name)): axum::extract::Path<(String, String)>,
    one: One,
) -> Response {
    let mut p = match gate(&shared, one, "get") {
        Ok(p) => p,
        Err((code, body)) => return answer(code, body),
    };
    match one.map(&mut p).get(&(namespace, name.clone())) {
        Some(object) => answer(StatusCode::OK, object.clone()),
        None => not_found(one, &name),
    }
}

async fn create_one(
    State(shared): State<Shared>,
    axum::extract::Path(namespace): axum::extract::Path<String>,
    one: One,
    object: Value,
) -> Response {
    let mut p = match gate(&shared, one, "create") {
        Ok(p) => p,
        Err((code, body)) => return answer(code, body),
    };
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if one
        .map(&mut p)
        .contains_key(&(namespace.clone(), name.clone()))
    {
        let message = format!("{} \"{name}\" already exists", one.what());
        return answer(StatusCode::CONFLICT, status(409, "AlreadyExists", &message));
    }
    match accept(&mut p, one, &namespace, object) {
        Ok(object) => answer(StatusCode::CREATED, object),
        Err((code, body)) => answer(code, body),
    }
}

/// Replaces an object, refused with 409 `Conflict` unless the body's
/// `metadata.resourceVersion` is the current one.
async fn replace_one(
    State(shared): State<Shared>,
    axum::extract::Path((namespace, name)): axum::extract::Path<(String, String)>,
    one: One,
    object: Value,
) -> Response {
    let mut p = match gate(&shared, one, "update") {
        Ok(p) => p,
        Err((code, body)) => return answer(code, body),
    };
    let Some(current) = one.map(&mut p).get(&(namespace.clone(), name.clone())) else {
        return not_found(one, &name);
    };
    let sent = object["metadata"]["resourceVersion"].as_str();
    if sent.is_some_and(|v| Some(v) != current["metadata"]["resourceVersion"].as_str()) {
        let message = format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            one.what()
        );
        return answer(StatusCode::CONFLICT, status(409, "Conflict", &message));
    }
    if object["metadata"]["name"].as_str() != Some(name.as_str()) {
        return answer(
            StatusCode::BAD_REQUEST,
            status(
                400,
                "BadRequest",
                "the name of the object does not match the name on the URL",
            ),
        );
    }
    match accept(&mut p, one, &namespace, object) {
        Ok(object) => answer(StatusCode::OK, object),
        Err((code, body)) => answer(code, body),
    }
}

fn line(value: Value) -> Result<bytes::Bytes, std::convert::Infallible> {
    let mut text = value.to_string();
    text.push('\n');
    Ok(text.into())
}

/// `Pod` for `pods`, `Namespace` for `namespaces`.
fn kind_of(resource: &str) -> &'static str {
    match resource {
        "pods" => "Pod",
        "nodes" => "Node",
        "events" => "Event",
        "services" => "Service",
        "servicemonitors" => "ServiceMonitor",
        "podmonitors" => "PodMonitor",
        "endpointslices" => "EndpointSlice",
        _ => "Namespace",
    }
}

fn api_version_of(resource: &str) -> &'static str {
    match resource {
        "events" => "events.k8s.io/v1",
        "servicemonitors" | "podmonitors" => "monitoring.coreos.com/v1",
        "endpointslices" => "discovery.k8s.io/v1",
        _ => "v1",
    }
}

/// Writes watch events of `resource` after `from` until the watch is cut.
async fn stream_watch(
    shared: Shared,
    resource: &'static str,
    scope: Scope,
    from: u64,
    bookmarks: bool,
    tx: mpsc::Sender<Result<bytes::Bytes, std::convert::Infallible>>,
) {
    let mut notify = shared.notify.subscribe();
    let mut close = shared.close.subscribe();
    close.mark_unchanged();
    let compacted = shared.pods.lock().unwrap().compacted;
    if from < compacted {
        let message = format!("too old resource version: {from} ({compacted})");
        let _ = tx
            .send(line(
                json!({"type": "ERROR", "object": status(410, "Expired", &message)}),
            ))
            .await;
        return;
    }
    let mut last = from;
    let mut tick = tokio::time::interval(shared.bookmark_every);
    loop {
        let pending: Vec<(u64, &'static str, Value)> = {
            let p = shared.pods.lock().unwrap();
            if p.down {
                return;
            }
            p.history
                .iter()
                .filter(|(rv, r, _, o)| *rv > last && *r == resource && scope.holds(resource, o))
                .map(|(rv, _, kind, object)| (*rv, *kind, object.clone()))
                .collect()
        };
        for (rv, kind, object) in pending {
            *shared
                .pods
                .lock()
                .unwrap()
                .sent
                .entry(resource)
                .or_default() += 1;
            if tx
                .send(line(json!({"type": kind, "object": object})))
                .await
                .is_err()
            {
                return;
            }
            last = rv;
        }
        tokio::select! {
            _ = notify.recv() => {}
            _ = close.changed() => return,
            _ = tx.closed() => return,
            _ = tick.tick() => {
                if bookmarks {
                    // A bookmark says "everything up to here was sent".
                    let mark = json!({"type": "BOOKMARK", "object": {
                        "kind": kind_of(resource), "apiVersion": api_version_of(resource),
                        "metadata": {"resourceVersion": last.to_string()}
                    }});
                    if tx.send(line(mark)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// A pod of `node` as the API server returns it: owner, labels,
/// annotations, containers with ports, status with IPs and conditions, and
/// the fields ferro does not keep (managedFields, env, volumes).
pub fn pod(node: &str, namespace: &str, name: &str, uid: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": "1",
            "creationTimestamp": "2025-06-01T10:00:00Z",
            "generateName": format!("{name}-"),
            "labels": {"app.kubernetes.io/name": name, "pod-template-hash": "6c9f8b7d5"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-06-01T09:59:00Z"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{name}-6c9f8b7d5"),
                "uid": format!("rs-{uid}"), "controller": true, "blockOwnerDeletion": true
            }],
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                "time": "2025-06-01T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}]
        },
        "spec": {
            "nodeName": node,
            "serviceAccountName": "default",
            "restartPolicy": "Always",
            "containers": [{
                "name": "app",
                "image": format!("registry.example/{name}:1.0"),
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": "LOG_LEVEL", "value": "info"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]
            }],
            "volumes": [{"name": "kube-api-access", "projected": {"sources": []}}]
        },
        "status": {
            "phase": "Running",
            "hostIP": "10.0.0.1",
            "hostIPs": [{"ip": "10.0.0.1"}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "qosClass": "Burstable",
            "startTime": "2025-06-01T10:00:01Z",
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": "2025-06-01T10:00:01Z"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2025-06-01T10:00:05Z"}
            ],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "x", "imageID": "y",
                "containerID": "containerd://abc", "started": true, "state": {"running": {"startedAt": "2025-06-01T10:00:04Z"}}}]
        }
    })
}

/// An `events.k8s.io/v1` Event as the API server returns it: about a pod
/// of `namespace`, reported by the kubelet of `node`, seen `count` times
/// (a `series` past the first), last at `last` (RFC 3339, seconds).
pub fn event(
    namespace: &str,
    uid: &str,
    reason: &str,
    note: &str,
    count: i32,
    last: &str,
) -> Value {
    let event = json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {
            "name": format!("web-0.{uid}"),
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": "1",
            "creationTimestamp": "2025-06-01T10:00:00Z",
            "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1",
                "time": "2025-06-01T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:count": {}}}]
        },
        "eventTime": null,
        "reportingController": "kubelet",
        "reportingInstance": "node-a",
        "action": "",
        "reason": reason,
        "regarding": {
            "kind": "Pod",
            "namespace": namespace,
            "name": "web-0",
            "uid": "pod-uid-web-0",
            "apiVersion": "v1",
            "resourceVersion": "4711",
            "fieldPath": "spec.containers{app}"
        },
        "note": note,
        "type": if reason.starts_with("Failed") || reason == "BackOff" { "Warning" } else { "Normal" },
        "deprecatedSource": {"component": "kubelet", "host": "node-a"},
        "deprecatedFirstTimestamp": "2025-06-01T10:00:00Z",
        "deprecatedLastTimestamp": last,
        "deprecatedCount": count
    });
    event
}

/// A Service as the API server returns it: `selector` (a map, or null for
/// none) and `ports` (`[{"name", "port", "targetPort", "protocol"}]`).
pub fn service(namespace: &str, name: &str, labels: Value, selector: Value, ports: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": format!("svc-{namespace}-{name}"),
            "resourceVersion": "1",
            "creationTimestamp": "2025-05-01T08:00:00Z",
            "labels": labels,
            "annotations": {"meta.helm.sh/release-name": name}
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "selector": selector,
            "ports": ports,
            "sessionAffinity": "None"
        },
        "status": {"loadBalancer": {}}
    })
}

/// A ServiceMonitor or PodMonitor (`kind`) as the API server returns it.
pub fn monitor(kind: &str, namespace: &str, name: &str, labels: Value, spec: Value) -> Value {
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": format!("{kind}-{namespace}-{name}"),
            "resourceVersion": "1",
            "generation": 1,
            "creationTimestamp": "2025-05-01T08:00:00Z",
            "labels": labels
        },
        "spec": spec
    })
}

/// An EndpointSlice of Service `service` as the endpointslice controller
/// writes it: `endpoints` as `[{"addresses", "targetRef"?, "nodeName"?}]`.
pub fn endpoint_slice(
    namespace: &str,
    service: &str,
    uid: &str,
    ports: Value,
    endpoints: Value,
) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{service}-{uid}"),
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": "1",
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"
            }
        },
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints
    })
}

/// A namespace as the API server returns it.
pub fn namespace(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": format!("ns-{name}"),
            "resourceVersion": "1",
            "creationTimestamp": "2025-05-01T08:00:00Z",
            "labels": labels,
            "annotations": {"owner.example/contact": format!("{name}@example.com")},
            "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
                "time": "2025-05-01T08:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}]
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    })
}
