//! Scraping, shared by the scrape receivers (`prometheus`, `pprof`): the
//! fields of Prometheus' `scrape_config` that every job has and their checks
//! ([`settings`]), where targets come from ([`sources`]), how discovered
//! groups become targets ([`targets`]), the loop that keeps one scrape task
//! per target in step with discovery ([`discovery`]), and a job's client and
//! GET ([`job`]).
//!
//! What a receiver does with a scraped body (parse a Prometheus page, check a
//! pprof profile) is its own.

pub mod discovery;
pub mod job;
pub mod settings;
pub mod sources;
pub mod targets;

pub use discovery::{PodGroups, Sources, reconcile};
pub use job::{FetchError, Job, TargetHealth};
pub use settings::{JobDefaults, JobSettings, RawJob};
pub use sources::{FileSdConfig, RawKubernetesSdConfig, StaticConfig};
pub use targets::{FileSd, Target, TargetRules, resolve};
