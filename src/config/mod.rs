//! The leaf every component's config builds on: units, the TOML document
//! with its spans, field errors and [`Validate`], [`ComponentId`] and
//! environment interpolation. It knows no component: the whole config is
//! resolved by [`crate::plan`].
//!
//! Loading reports every mistake at once with its dotted path and line (see
//! [`document`]).

pub mod component;
pub mod document;
pub mod env;
pub mod keys;
pub mod sections;
pub mod units;

pub use component::ComponentId;
pub use document::{ConfigError, ConfigErrors, FieldError, Validate};
pub use sections::MAX_CONFIG_BYTES;
pub use units::{ByteSize, HumanDuration, parse_byte_size, parse_duration};
