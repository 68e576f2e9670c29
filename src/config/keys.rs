//! The keys a config table accepts, read from its serde type: what the docs
//! test checks each component's page against, so that a key added to a
//! component cannot go undocumented.
//!
//! [`keys`] drives the type's `Deserialize` with a deserializer that has no
//! data: every struct it reaches tells it its field names (serde passes them
//! to `deserialize_struct`). It explores one field path per pass, so that a
//! field whose value it cannot invent (a duration, an enum) does not hide
//! the fields after it.

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use std::cell::RefCell;
use std::collections::BTreeSet;

/// A component type as its kind's registry lists it: its name in the config
/// and the keys its table accepts.
pub type TypeKeys = (&'static str, fn() -> BTreeSet<String>);

/// Every key of `T`, as dotted paths (`queue.max_items`); a map's keys are
/// written `*` (`profiles.*.path`), a list's items as the list itself.
pub fn keys<T: DeserializeOwned>() -> BTreeSet<String> {
    let found = RefCell::new(BTreeSet::new());
    let mut explored = BTreeSet::new();
    let mut pending = vec![Vec::<String>::new()];
    while let Some(target) = pending.pop() {
        if !explored.insert(target.clone()) || target.len() > 8 {
            continue;
        }
        let fields = RefCell::new(None);
        let lister = Lister {
            target: &target,
            depth: 0,
            found: &found,
            fields: &fields,
        };
        // It fails, always (missing fields, values it cannot make): what it
        // saw on the way is the result.
        let _ = T::deserialize(lister);
        if let Some(fields) = fields.into_inner() {
            for field in fields {
                let mut path = target.clone();
                path.push(field);
                pending.push(path);
            }
        }
    }
    found.into_inner()
}

#[derive(Debug)]
struct Stop(String);

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: std::fmt::Display>(message: M) -> Self {
        Stop(message.to_string())
    }
}

/// A deserializer that walks down `target` (a field path) and records the
/// fields of the struct it ends at.
#[derive(Clone, Copy)]
struct Lister<'a> {
    target: &'a [String],
    depth: usize,
    found: &'a RefCell<BTreeSet<String>>,
    /// The fields of the struct at the end of `target`, once reached.
    fields: &'a RefCell<Option<Vec<String>>>,
}

impl<'a> Lister<'a> {
    fn at_target(&self) -> bool {
        self.depth == self.target.len()
    }

    fn deeper(self) -> Self {
        Lister {
            depth: self.depth + 1,
            ..self
        }
    }

    fn record(&self, fields: &[&str]) {
        let prefix = self.target[..self.depth].join(".");
        let mut found = self.found.borrow_mut();
        for field in fields {
            found.insert(if prefix.is_empty() {
                field.to_string()
            } else {
                format!("{prefix}.{field}")
            });
        }
        *self.fields.borrow_mut() = Some(fields.iter().map(|f| f.to_string()).collect());
    }
}

impl<'de> de::Deserializer<'de> for Lister<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop("no data".into()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        if self.at_target() {
            self.record(fields);
            return visitor.visit_map(Fields { next: None });
        }
        let step = self.target[self.depth].clone();
        if !fields.contains(&step.as_str()) {
            return Err(Stop("not on the path".into()));
        }
        visitor.visit_map(Fields {
            next: Some((step, self.deeper())),
        })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        // A table of user-named entries (`profiles.NAME`): its values' keys
        // are under `*`.
        if self.at_target() {
            *self.fields.borrow_mut() = Some(vec!["*".to_string()]);
            return visitor.visit_map(Fields { next: None });
        }
        if self.target[self.depth] != "*" {
            return Err(Stop("not on the path".into()));
        }
        visitor.visit_map(Fields {
            next: Some(("*".into(), self.deeper())),
        })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_seq(Items { item: Some(self) })
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct enum identifier
        ignored_any
    }
}

/// A struct's or map's entries: at most the one on the path.
struct Fields<'a> {
    next: Option<(String, Lister<'a>)>,
}

impl<'de, 'a> de::MapAccess<'de> for Fields<'a> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        match &self.next {
            Some((key, _)) => seed.deserialize(key.clone().into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        let (_, value) = self.next.take().ok_or(Stop("no value".into()))?;
        seed.deserialize(value)
    }
}

/// A list: one item, described by the same lister.
struct Items<'a> {
    item: Option<Lister<'a>>,
}

impl<'de, 'a> de::SeqAccess<'de> for Items<'a> {
    type Error = Stop;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Stop> {
        match self.item.take() {
            Some(item) => seed.deserialize(item).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct Inner {
        max_items: usize,
        wait: crate::config::HumanDuration,
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    enum Mode {
        Fast,
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct Outer {
        endpoint: String,
        /// A value the lister cannot make comes first: the rest still counts.
        mode: Mode,
        #[serde(default)]
        queue: Inner,
        #[serde(rename = "tls_config")]
        tls: Option<Inner>,
        jobs: Vec<Inner>,
        named: BTreeMap<String, Inner>,
    }

    impl Default for Inner {
        fn default() -> Self {
            Inner {
                max_items: 0,
                wait: crate::config::HumanDuration::from_secs(1),
            }
        }
    }

    #[test]
    fn lists_every_key_down_the_tree() {
        let found: Vec<String> = keys::<Outer>().into_iter().collect();
        assert_eq!(
            found,
            [
                "endpoint",
                "jobs",
                "jobs.max_items",
                "jobs.wait",
                "mode",
                "named",
                "named.*.max_items",
                "named.*.wait",
                "queue",
                "queue.max_items",
                "queue.wait",
                "tls_config",
                "tls_config.max_items",
                "tls_config.wait",
            ]
        );
    }
}
