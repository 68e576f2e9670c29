//! What ferro keeps of a namespace: its name, and the labels and
//! annotations `k8s_attributes`' `namespace_labels` and
//! `namespace_annotations` copy (trimmed as a pod's are).

use k8s_openapi::api::core::v1::Namespace;
use std::sync::Arc;

use super::config::NamespaceKeys;
use super::pod::{Incomplete, kept_annotations, kept_labels, lookup, pairs_bytes};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceInfo {
    pub name: Arc<str>,
    /// Sorted by key.
    pub labels: Vec<(Arc<str>, Arc<str>)>,
    /// Sorted by key; without the annotations a pod's copy leaves out.
    pub annotations: Vec<(Arc<str>, Arc<str>)>,
}

impl NamespaceInfo {
    /// The trimmed copy of `namespace`, with only the labels and
    /// annotations `wanted`; annotations dropped for size are counted in
    /// `skipped_annotations`.
    pub fn from_namespace(
        namespace: &Namespace,
        wanted: &NamespaceKeys,
        skipped_annotations: &mut u64,
    ) -> Result<NamespaceInfo, Incomplete> {
        let meta = &namespace.metadata;
        let name = meta.name.as_deref().ok_or(Incomplete::Missing("name"))?;
        let mut labels = kept_labels(meta);
        labels.retain(|(k, _)| wanted.labels.contains(&**k));
        let mut annotations = kept_annotations(meta, skipped_annotations);
        annotations.retain(|(k, _)| wanted.annotations.contains(&**k));
        Ok(NamespaceInfo {
            name: name.into(),
            labels,
            annotations,
        })
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        lookup(&self.labels, key)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        lookup(&self.annotations, key)
    }

    /// Roughly the heap bytes this entry holds, for the cache's gauge.
    pub fn heap_bytes(&self) -> usize {
        self.name.len()
            + pairs_bytes(&self.labels)
            + pairs_bytes(&self.annotations)
            + std::mem::size_of::<Self>()
    }
}
