//! Scraping Go-style pprof endpoints: one loop per target and profile type,
//! each fetching its path every interval (CPU with `?seconds=N`, N the
//! interval less a second), checking the body is a profile, and handing it
//! on with its series labels.
//!
//! Endpoints: <https://pkg.go.dev/net/http/pprof>.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::config::{ProfileType, ScrapeConfig};
use crate::pprof;
use crate::scrape::StaticConfig;
use crate::scrape::resolve;
use crate::scrape::{FetchError, TargetHealth};
use crate::signal::Labels;
use crate::signal::profiles::{Profile, Profiles};

/// A label a target group may carry to have one profile type scraped from
/// its targets instead of the job's whole list: what Kubernetes pod
/// discovery by `profiles.grafana.com/<type>.scrape` annotations sets.
pub const PROFILE_TYPE_LABEL: &str = "__profile_type__";
/// With [`PROFILE_TYPE_LABEL`]: the path to fetch it from.
pub const PROFILE_PATH_LABEL: &str = "__profile_path__";

/// What every target of one job shares.
pub type Job = crate::scrape::Job<ScrapeConfig>;

/// One profile type of one target: what a scrape loop fetches.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProfileTarget {
    pub url: String,
    /// Series labels: `__name__`, `service_name`, `job`, `instance`, the
    /// group's and relabelling's labels.
    pub labels: Labels,
}

/// Why a scrape produced no profile.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("scrape timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Profile(#[from] pprof::PprofError),
}

impl ScrapeError {
    /// The counter reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Fetch(e) => e.reason(),
            Self::Timeout(_) => "timeout",
            Self::Profile(e) => e.reason(),
        }
    }
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The profile targets of `groups`: every address relabelled as Prometheus
/// does (`job`, `instance`, group labels, `relabel_configs`), then one
/// target per enabled profile type with `__name__` set. A target without
/// `service_name` gets the job name.
pub fn targets(config: &ScrapeConfig, groups: &[StaticConfig]) -> Vec<ProfileTarget> {
    let params = Default::default();
    let rules = config
        .job
        .target_rules(None, &params, &[PROFILE_TYPE_LABEL, PROFILE_PATH_LABEL]);
    let mut out = Vec::new();
    for target in resolve(&rules, groups) {
        let mut labels = target.labels.to_builder();
        let only = labels.get(PROFILE_TYPE_LABEL).map(str::to_string);
        let only_path = labels.get(PROFILE_PATH_LABEL).map(str::to_string);
        labels.remove(PROFILE_TYPE_LABEL);
        labels.remove(PROFILE_PATH_LABEL);
        if labels.get("service_name").is_none() {
            labels.set("service_name", &config.job.job_name);
        }
        let chosen: Vec<ProfileType> = match &only {
            None => config.profiles.clone(),
            Some(name) => {
                let known = config
                    .profiles
                    .iter()
                    .find(|p| &p.name == name)
                    .cloned()
                    .or_else(|| {
                        super::config::BUILT_IN
                            .iter()
                            .find(|(n, _, _)| n == name)
                            .map(|(n, path, delta)| ProfileType {
                                name: n.to_string(),
                                path: path.to_string(),
                                delta: *delta,
                            })
                    });
                match known {
                    Some(mut p) => {
                        if let Some(path) = &only_path {
                            p.path.clone_from(path);
                        }
                        vec![p]
                    }
                    None => {
                        tracing::warn!(job = %config.job.job_name, profile_type = %name, "a target asks for a profile type the job does not know; skipped");
                        Vec::new()
                    }
                }
            }
        };
        for profile in chosen {
            labels.set("__name__", &profile.name);
            let mut url = format!("{}{}", target.url, profile.path);
            if profile.delta {
                let sep = if url.contains('?') { '&' } else { '?' };
                url.push_str(&format!("{sep}seconds={}", config.delta_seconds()));
            }
            // Served as the difference over the interval: Pyroscope must not
            // subtract it again (it never subtracts CPU profiles, which go
            // unlabelled as from Alloy).
            if profile.delta && profile.name != "process_cpu" {
                labels.set("__delta__", "false");
            } else {
                labels.remove("__delta__");
            }
            out.push(ProfileTarget {
                url,
                labels: labels.labels(),
            });
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Scrapes `target` every interval until `stop`.
pub async fn run(
    job: Arc<Job>,
    target: ProfileTarget,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let interval = job.config.job.scrape_interval;
    // Spread targets over the interval, as Prometheus does, so that a
    // hundred targets are not fetched at once.
    let interval_ms = interval.as_millis().max(1) as u64;
    let offset = Duration::from_millis(target.labels.hash64() % interval_ms);
    let mut next = tokio::time::Instant::now() + offset;
    let mut health = TargetHealth::new(
        &shared.telemetry,
        shared.labels.clone(),
        &job.config.job.job_name,
        &target.url,
    );
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.cancelled() => return,
        }
        next += interval;
        tokio::select! {
            _ = scrape_once(&job, &target, &shared, &mut health) => {}
            // A CPU profile holds the request for most of the interval:
            // stopping must not wait for it.
            _ = stop.cancelled() => return,
        }
        let now = tokio::time::Instant::now();
        if next < now {
            // A scrape overran its interval: skip the missed slots.
            next = now + interval;
        }
    }
}

async fn scrape_once(
    job: &Job,
    target: &ProfileTarget,
    shared: &Shared,
    health: &mut TargetHealth,
) {
    let started = now_ns();
    let clock = std::time::Instant::now();
    let limit = job.config.job.body_size_limit;
    let fetched = job.get(
        http::Request::get(&target.url),
        &target.url,
        limit,
        &shared.limiter,
    );
    let fetched = match tokio::time::timeout(job.config.job.scrape_timeout, fetched).await {
        Ok(result) => result.map_err(ScrapeError::from),
        Err(_) => Err(ScrapeError::Timeout(job.config.job.scrape_timeout)),
    };
    let result = fetched.and_then(|(_, body, ticket)| {
        let checked = pprof::check(&body, shared.max_profile_size)?;
        Ok((body, ticket, checked))
    });
    let (body, ticket, checked) = match result {
        Ok(ok) => {
            health.succeeded(clock.elapsed());
            ok
        }
        Err(error) => {
            if let ScrapeError::Profile(_) = &error {
                shared.drop_profiles(error.reason(), 1);
            }
            health.failed(error.reason(), &error, clock.elapsed());
            return;
        }
    };
    let start_ns = if checked.time_ns > 0 {
        checked.time_ns
    } else {
        started
    };
    let end_ns = if checked.duration_ns > 0 {
        start_ns.saturating_add(checked.duration_ns)
    } else {
        now_ns().max(start_ns)
    };
    let profile = Profile {
        labels: target.labels.clone(),
        pprof: body,
        start_ns,
        end_ns,
        sample_types: checked.sample_types,
    };
    let profiles = Profiles::new(vec![profile]);
    // A scrape that finds no room is not retried: the next interval
    // brings a fresh profile. `hand_on` counts the refusal.
    let _ = shared.hand_on(profiles, ticket).await;
}
