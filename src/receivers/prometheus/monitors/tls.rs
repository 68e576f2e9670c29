//! The Secret and ConfigMap keys a monitor's `tlsConfig` refers to (`ca`,
//! `cert`, `keySecret`), read from the API server in the monitor's
//! namespace where RBAC lets ferro, and written to files under `data_dir`
//! for the job's TLS config to read, as the Operator writes them into
//! Prometheus' pod.
//!
//! A file is named after its content, so a rotated certificate gives a new
//! file name, a changed job, and a job restarted with it. Values are read
//! again every [`REFRESH`]; a read that fails is logged by the manager and
//! the endpoint is not scraped until it succeeds (scraping without the CA
//! it names would fail anyway, or worse, trust the wrong roots).

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::k8s::monitor::{EndpointTls, KeyRef, SecretOrConfigMap};

/// How long a value read is used before it is read again.
pub const REFRESH: Duration = Duration::from_secs(300);

/// The files of one endpoint's TLS config, where it names Secret or
/// ConfigMap keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Files {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Secret,
    ConfigMap,
}

type Key = (Kind, String, KeyRef);

pub struct TlsFiles {
    client: kube::Client,
    dir: PathBuf,
    read: HashMap<Key, (Instant, Result<PathBuf, String>)>,
}

impl TlsFiles {
    pub fn new(client: kube::Client, dir: &Path) -> TlsFiles {
        TlsFiles {
            client,
            dir: dir.to_path_buf(),
            read: HashMap::new(),
        }
    }

    /// The files of `tls` (an endpoint of a monitor in `namespace`); the
    /// error names what could not be read and why.
    pub async fn files(&mut self, namespace: &str, tls: &EndpointTls) -> Result<Files, String> {
        let mut files = Files::default();
        if let Some(ca) = &tls.ca {
            files.ca_file = self.either(namespace, ca).await?;
        }
        if let Some(cert) = &tls.cert {
            files.cert_file = self.either(namespace, cert).await?;
        }
        if let Some(key) = &tls.key_secret {
            files.key_file = Some(self.value(Kind::Secret, namespace, key).await?);
        }
        Ok(files)
    }

    /// Deletes the files no running job reads (`keep`): those of deleted
    /// monitors and rotated keys; private keys do not linger on disk.
    pub fn prune(&mut self, keep: &std::collections::HashSet<PathBuf>) {
        // Failed reads stay (they are not asked again before REFRESH).
        self.read.retain(|_, (_, value)| match value {
            Ok(path) => keep.contains(path),
            Err(_) => true,
        });
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "pem")
                && !keep.contains(&path)
                && let Err(e) = std::fs::remove_file(&path)
            {
                tracing::warn!(file = %path.display(), error = %e, "cannot delete a monitor's TLS file no job reads");
            }
        }
    }

    async fn either(
        &mut self,
        namespace: &str,
        reference: &SecretOrConfigMap,
    ) -> Result<Option<PathBuf>, String> {
        match (&reference.secret, &reference.config_map) {
            (Some(key), _) => self.value(Kind::Secret, namespace, key).await.map(Some),
            (None, Some(key)) => self.value(Kind::ConfigMap, namespace, key).await.map(Some),
            (None, None) => Ok(None),
        }
    }

    /// The file holding `key` of the object, read (again) if not read for
    /// [`REFRESH`].
    async fn value(
        &mut self,
        kind: Kind,
        namespace: &str,
        key: &KeyRef,
    ) -> Result<PathBuf, String> {
        let cache_key = (kind, namespace.to_string(), key.clone());
        if let Some((at, value)) = self.read.get(&cache_key)
            && at.elapsed() < REFRESH
        {
            return value.clone();
        }
        let mut value = self.fetch(kind, namespace, key).await;
        if let (Err(error), Some((_, Ok(last)))) = (&value, self.read.get(&cache_key)) {
            // Read before, not now (the API server away, RBAC changed):
            // the last value read goes on being used, and that is said.
            tracing::warn!(%error, file = %last.display(), "cannot read a monitor's TLS key again; using the value read before");
            value = Ok(last.clone());
        }
        self.read.insert(cache_key, (Instant::now(), value.clone()));
        value
    }

    async fn fetch(&self, kind: Kind, namespace: &str, key: &KeyRef) -> Result<PathBuf, String> {
        let what = match kind {
            Kind::Secret => "Secret",
            Kind::ConfigMap => "ConfigMap",
        };
        let named = format!("key {:?} of {what} {namespace}/{}", key.key, key.name);
        let failed = |e: kube::Error| match e {
            kube::Error::Api(status) if status.code == 403 => format!(
                "{named}: ferro may not read it (RBAC: get on {}s in {namespace})",
                what.to_lowercase()
            ),
            kube::Error::Api(status) if status.code == 404 => format!("{named}: not found"),
            e => format!("{named}: {e}"),
        };
        let bytes: Vec<u8> = match kind {
            Kind::Secret => {
                let api: kube::Api<Secret> = kube::Api::namespaced(self.client.clone(), namespace);
                let secret = api.get(&key.name).await.map_err(failed)?;
                secret
                    .data
                    .and_then(|mut d| d.remove(&key.key))
                    .map(|b| b.0)
                    .ok_or_else(|| format!("{named}: no such key"))?
            }
            Kind::ConfigMap => {
                let api: kube::Api<ConfigMap> =
                    kube::Api::namespaced(self.client.clone(), namespace);
                let map = api.get(&key.name).await.map_err(failed)?;
                map.data
                    .and_then(|mut d| d.remove(&key.key))
                    .map(String::into_bytes)
                    .ok_or_else(|| format!("{named}: no such key"))?
            }
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut hasher);
        let path = self.dir.join(format!("{:016x}.pem", hasher.finish()));
        let dir = self.dir.clone();
        let target = path.clone();
        let written = tokio::task::spawn_blocking(move || write_private(&dir, &target, &bytes))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        written.map_err(|e| format!("{named}: cannot write {}: {e}", path.display()))?;
        Ok(path)
    }
}

/// Writes `bytes` to `path` (in `dir`, created if needed), readable by
/// ferro alone: it may be a private key.
fn write_private(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    if path.exists() {
        return Ok(());
    }
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_no_job_reads_are_deleted_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let mut files = TlsFiles::new(kube::Client::try_from(config).unwrap(), dir.path());
        for name in ["kept.pem", "rotated.pem", "notes.txt"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let keep = std::collections::HashSet::from([dir.path().join("kept.pem")]);
        files.prune(&keep);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["kept.pem", "notes.txt"]);
    }
}
