//! A Prometheus job's targets: its scrape config as the rules that turn
//! discovered groups into targets.

use super::config::ScrapeConfig;
use crate::scrape::{StaticConfig, Target, resolve};

/// Turns discovered groups into targets (see [`resolve`]): each address
/// gets `__address__`, `__scheme__`, `__metrics_path__`, `__param_*`,
/// `__scrape_interval__`, `__scrape_timeout__` and `job`, then the group's
/// labels, then `relabel_configs`; a target whose `__address__` is gone or
/// that a rule dropped is not scraped.
pub fn targets(config: &ScrapeConfig, groups: &[StaticConfig]) -> Vec<Target> {
    let rules = config
        .job
        .target_rules(Some(&config.metrics_path), &config.params, &[]);
    resolve(&rules, groups)
}

#[cfg(test)]
mod tests;
