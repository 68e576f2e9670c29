//! Where the shipped-events state is kept in the cluster: a ConfigMap
//! (key `state`), written with the resourceVersion last read so that two
//! writers never overwrite each other unseen; on a conflict the writer
//! reads the other's state, merges it into its own and writes again.
//!
//! Why a ConfigMap and not the Lease's annotations: the elector writes
//! the Lease every `retry_period`, and state written into the same object
//! would conflict with those renewals (and a slow state write could delay
//! one past `renew_deadline`); the state also grows to hundreds of KiB,
//! which every candidate would read with each Lease poll.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, PostParams};
use prometheus_client::metrics::counter::Counter;
use std::collections::BTreeMap;
use std::future::Future;

use super::state::Shipped;

/// Why a read or write failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// 409: another writer came first.
    #[error("conflict: written by another agent first")]
    Conflict,
    /// 403: ferro's service account may not (RBAC).
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{0}")]
    Api(String),
}

/// The state's place: the API server, or a fake in tests.
pub trait StateStore: Send + Sync + 'static {
    /// The text and its resourceVersion; `None` if there is none.
    fn get(&self) -> impl Future<Output = Result<Option<(String, String)>, StoreError>> + Send;
    /// Creates it; the new resourceVersion.
    fn create(&self, text: &str) -> impl Future<Output = Result<String, StoreError>> + Send;
    /// Replaces it if it is still at `version`; the new resourceVersion.
    fn update(
        &self,
        text: &str,
        version: &str,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// The key of the ConfigMap's data that holds the state.
pub const KEY: &str = "state";

/// A ConfigMap on the API server.
pub struct KubeConfigMap {
    api: kube::Api<ConfigMap>,
    name: String,
}

impl KubeConfigMap {
    pub fn new(client: kube::Client, namespace: Option<&str>, name: &str) -> Self {
        let api = match namespace {
            Some(namespace) => kube::Api::namespaced(client, namespace),
            None => kube::Api::default_namespaced(client),
        };
        Self {
            api,
            name: name.to_string(),
        }
    }

    fn object(&self, text: &str, version: Option<&str>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                resource_version: version.map(str::to_string),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_string(),
                    "ferro".to_string(),
                )])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(KEY.to_string(), text.to_string())])),
            ..Default::default()
        }
    }
}

fn store_error(e: kube::Error) -> StoreError {
    match e {
        kube::Error::Api(status) if status.code == 409 => StoreError::Conflict,
        kube::Error::Api(status) if status.code == 403 => StoreError::Forbidden(status.message),
        e => StoreError::Api(e.to_string()),
    }
}

fn version_of(map: &ConfigMap) -> String {
    map.metadata.resource_version.clone().unwrap_or_default()
}

impl StateStore for KubeConfigMap {
    async fn get(&self) -> Result<Option<(String, String)>, StoreError> {
        let map = self.api.get_opt(&self.name).await.map_err(store_error)?;
        Ok(map.map(|map| {
            let text = map
                .data
                .as_ref()
                .and_then(|d| d.get(KEY))
                .cloned()
                .unwrap_or_default();
            (text, version_of(&map))
        }))
    }

    async fn create(&self, text: &str) -> Result<String, StoreError> {
        let map = self
            .api
            .create(&PostParams::default(), &self.object(text, None))
            .await
            .map_err(store_error)?;
        Ok(version_of(&map))
    }

    async fn update(&self, text: &str, version: &str) -> Result<String, StoreError> {
        let map = self
            .api
            .replace(
                &self.name,
                &PostParams::default(),
                &self.object(text, Some(version)),
            )
            .await
            .map_err(store_error)?;
        Ok(version_of(&map))
    }
}

/// Writes `state` to the store at `version` (the resourceVersion last
/// read or written, kept up to date); on a conflict, merges what another
/// agent wrote into `state` (counted in `conflicts`) and writes again.
pub async fn write_state<S: StateStore>(
    store: &S,
    state: &mut Shipped,
    version: &mut Option<String>,
    conflicts: &Counter,
) -> Result<(), String> {
    let mut text = state.encode();
    for _ in 0..3 {
        let written = match version.as_deref() {
            None => store.create(&text).await,
            Some(at) => store.update(&text, at).await,
        };
        match written {
            Ok(new) => {
                *version = Some(new);
                return Ok(());
            }
            Err(StoreError::Conflict) => {
                conflicts.inc();
                match store.get().await.map_err(|e| e.to_string())? {
                    Some((theirs, at)) => {
                        *version = Some(at);
                        // Theirs unreadable: overwritten with ours.
                        if let Ok(theirs) = Shipped::parse(&theirs) {
                            state.merge(&theirs);
                            text = state.encode();
                        }
                    }
                    None => *version = None,
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("the ConfigMap kept changing under this agent".into())
}

/// A ConfigMap in memory, for tests: the same conflict rules.
#[cfg(test)]
#[derive(Default)]
pub struct FakeStore {
    pub map: std::sync::Mutex<Option<(String, u64)>>,
    pub down: std::sync::atomic::AtomicBool,
}

#[cfg(test)]
impl FakeStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Api("503".into()));
        }
        Ok(())
    }

    pub fn text(&self) -> Option<String> {
        self.map.lock().unwrap().as_ref().map(|(t, _)| t.clone())
    }
}

#[cfg(test)]
impl StateStore for std::sync::Arc<FakeStore> {
    async fn get(&self) -> Result<Option<(String, String)>, StoreError> {
        self.check()?;
        let map = self.map.lock().unwrap();
        Ok(map.as_ref().map(|(t, v)| (t.clone(), v.to_string())))
    }

    async fn create(&self, text: &str) -> Result<String, StoreError> {
        self.check()?;
        let mut map = self.map.lock().unwrap();
        if map.is_some() {
            return Err(StoreError::Conflict);
        }
        *map = Some((text.to_string(), 1));
        Ok("1".into())
    }

    async fn update(&self, text: &str, version: &str) -> Result<String, StoreError> {
        self.check()?;
        let mut map = self.map.lock().unwrap();
        match map.as_mut() {
            Some((t, v)) if v.to_string() == version => {
                *t = text.to_string();
                *v += 1;
                Ok(v.to_string())
            }
            Some(_) => Err(StoreError::Conflict),
            None => Err(StoreError::Api("404".into())),
        }
    }
}
