//! How a config names a component: `[KIND.TYPE.NAME]`, referred to as
//! `TYPE.NAME` in pipelines.

use std::fmt;

/// Where a component lives in the config: `otlp.default` is
/// `[receivers.otlp.default]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentId {
    pub type_name: String,
    pub name: String,
}

impl ComponentId {
    pub fn new(type_name: &str, name: &str) -> Self {
        Self {
            type_name: type_name.to_string(),
            name: name.to_string(),
        }
    }

    /// Parses `TYPE.NAME`; a bare `TYPE` means `TYPE.default`.
    pub fn parse(reference: &str) -> Self {
        match reference.split_once('.') {
            Some((type_name, name)) => Self::new(type_name, name),
            None => Self::new(reference, "default"),
        }
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.type_name, self.name)
    }
}
