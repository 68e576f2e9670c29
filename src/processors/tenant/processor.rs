//! The tenant limiter: each record's tenant resolved, pushes admitted or
//! refused, and what is over a tenant's rate dropped and counted.

use super::config::{DEFAULT_TENANT, Limits, Source, TenantConfig};
use http::HeaderValue;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::active::{ActiveSet, EXPIRY_TICKS};
use super::bucket::Bucket;
use crate::config::ComponentId;
use crate::delivery::{Admitter, Batch, Outcome, Reservation, valid_tenant};
use crate::signal::{Fields, Group, Naming, Signal};
use crate::telemetry::{
    ComponentLabels, ReasonLabels, Telemetry, TenantFamilies, TenantLabels, TenantReasonLabels,
};

/// Why a tenant processor dropped records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    RateLimited,
    ByteRateLimited,
    SeriesLimit,
    StreamLimit,
    TooManyLabels,
    LabelValueTooLong,
    InvalidTenant,
}

impl Reason {
    const COUNT: usize = 7;

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::ByteRateLimited => "byte_rate_limited",
            Self::SeriesLimit => "series_limit",
            Self::StreamLimit => "stream_limit",
            Self::TooManyLabels => "too_many_labels",
            Self::LabelValueTooLong => "label_value_too_long",
            Self::InvalidTenant => "invalid_tenant",
        }
    }
}

/// The counter label of tenants past `max_tenants`.
pub const OVERFLOW: &str = "__overflow__";
/// The counter label of records whose tenant is not a valid tenant ID.
pub const INVALID: &str = "__invalid__";
/// Distinct tenants [`TenantLimiter::admit`] looks at in one request.
pub(super) const MAX_ADMISSION_TENANTS: usize = 64;

/// A built tenant processor, shared by every pipeline that runs it.
pub struct TenantLimiter {
    processor: String,
    /// `processor`, as admissions name it.
    id: std::sync::Arc<str>,
    config: TenantConfig,
    /// One per signal: a tenant's spans, samples and log lines are limited apart.
    states: [Mutex<State>; 4],
    families: TenantFamilies,
    dropped: Family<ReasonLabels, Counter>,
    epoch: Instant,
    /// One tick of the active-series clock: `active_expiry` / 64.
    tick: Duration,
}

pub(super) struct State {
    signal: Signal,
    /// `tenants[0]` is the overflow account; the others are tracked tenants.
    pub(super) tenants: Vec<Tenant>,
    index: HashMap<Box<str>, usize>,
    invalid: Option<Counter>,
    next_sweep: Instant,
    last_sweep: Instant,
}

pub(super) struct Tenant {
    id: HeaderValue,
    /// The `tenant` label of its counters.
    label: String,
    limits: Limits,
    records: Option<Bucket>,
    bytes: Option<Bucket>,
    active: ActiveSet,
    last_seen: Instant,
    dropped: [Option<Counter>; Reason::COUNT],
    active_gauge: Option<Gauge>,
}

impl Tenant {
    fn new(id: HeaderValue, label: String, limits: &Limits, now: Instant) -> Self {
        Self {
            id,
            label,
            records: limits.records.map(|r| Bucket::new(r, now)),
            bytes: limits.bytes.map(|r| Bucket::new(r, now)),
            limits: limits.clone(),
            active: ActiveSet::default(),
            last_seen: now,
            dropped: Default::default(),
            active_gauge: None,
        }
    }

    /// How long until both buckets hold a token again.
    fn wait(&mut self, now: Instant) -> Duration {
        let records = self
            .records
            .as_mut()
            .map_or(Duration::ZERO, |b| b.wait(now));
        let bytes = self.bytes.as_mut().map_or(Duration::ZERO, |b| b.wait(now));
        records.max(bytes)
    }

    /// Nothing owed and nothing active: forgetting it changes no decision.
    fn is_idle(&mut self, now: Instant) -> bool {
        self.active.len() == 0
            && self.records.as_mut().is_none_or(|b| b.is_full(now))
            && self.bytes.as_mut().is_none_or(|b| b.is_full(now))
    }
}

/// Where one batch's kept groups go: the tenant account and the header.
pub(super) struct Key {
    slot: usize,
    id: HeaderValue,
}

impl TenantLimiter {
    pub fn new(id: &ComponentId, config: &TenantConfig, telemetry: &Telemetry) -> Self {
        let now = Instant::now();
        let state = |signal: Signal| {
            Mutex::new(State {
                signal,
                tenants: vec![Tenant::new(
                    config.default_tenant.clone(),
                    OVERFLOW.to_string(),
                    &config.limits,
                    now,
                )],
                index: HashMap::new(),
                invalid: None,
                next_sweep: now,
                last_sweep: now,
            })
        };
        Self {
            processor: id.to_string(),
            id: id.to_string().into(),
            config: config.clone(),
            states: [
                state(Signal::Traces),
                state(Signal::Metrics),
                state(Signal::Logs),
                state(Signal::Profiles),
            ],
            families: TenantFamilies {
                dropped: telemetry.tenants.dropped.clone(),
                active: telemetry.tenants.active.clone(),
                overflow: telemetry.tenants.overflow.clone(),
                tracked: telemetry.tenants.tracked.clone(),
            },
            dropped: telemetry.dropped.clone(),
            epoch: now,
            tick: (config.active_expiry / u32::from(EXPIRY_TICKS)).max(Duration::from_millis(1)),
        }
    }

    /// Whether the OTLP receiver should ask [`TenantLimiter::admit`] first.
    pub fn refuses(&self) -> bool {
        self.config.refuse
    }

    /// Whether tenants come from the pushes' `X-Scope-OrgID`.
    pub fn reads_org_id(&self) -> bool {
        matches!(self.config.source, Source::Header)
    }

    pub(super) fn state(&self, signal: Signal) -> std::sync::MutexGuard<'_, State> {
        let slot = match signal {
            Signal::Traces => 0,
            Signal::Metrics => 1,
            Signal::Logs => 2,
            Signal::Profiles => 3,
        };
        // A panic while holding the lock would be a bug here; the state is
        // still consistent enough to keep limiting, so carry on.
        self.states[slot]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn ticks(&self, now: Instant) -> u16 {
        // Wrapping on purpose: ages are differences of ticks.
        (now.duration_since(self.epoch).as_nanos() / self.tick.as_nanos()) as u16
    }

    /// The key a group's tenant is looked up by, in the signal's naming.
    fn tenant_key<T: Fields>(&self) -> Option<&str> {
        match &self.config.source {
            Source::Label { label, attribute } => Some(match T::NAMING {
                Naming::Otel => attribute,
                Naming::Labels => label,
            }),
            Source::Static(_) | Source::Header => None,
        }
    }

    /// The tenant of a whole batch, when the source does not look at groups.
    fn batch_tenant<'a>(&'a self, org_id: Option<&'a HeaderValue>) -> Option<&'a str> {
        let default = self
            .config
            .default_tenant
            .to_str()
            .unwrap_or(DEFAULT_TENANT);
        match &self.config.source {
            Source::Static(tenant) => Some(tenant.to_str().unwrap_or(default)),
            Source::Header => Some(org_id.and_then(|v| v.to_str().ok()).unwrap_or(default)),
            Source::Label { .. } => None,
        }
    }

    /// Admits a push before the receiver accepts it, or says how long the
    /// sender should wait because a tenant of the request is over its rate.
    /// Admission charges the tenants at once, under the same lock as the
    /// check, so that pushes arriving together cannot all pass on the same
    /// tokens; [`TenantLimiter::process`] then drops nothing of an admitted
    /// batch for rate and does not charge again what admission charged (see
    /// [`Reservation::record`]). A push admitted but then not accepted (a
    /// full pipeline, a sender gone) gives its charge back with
    /// [`TenantLimiter::release`].
    pub fn admit<T: Fields>(
        &self,
        org_id: Option<&HeaderValue>,
        data: &mut T,
        bytes: usize,
    ) -> Result<Reservation, Duration> {
        self.admit_at(org_id, data, bytes, Instant::now())
    }

    pub(super) fn admit_at<T: Fields>(
        &self,
        org_id: Option<&HeaderValue>,
        data: &mut T,
        bytes: usize,
        now: Instant,
    ) -> Result<Reservation, Duration> {
        // Each tenant of the request with its records and bytes.
        let mut charges: Vec<(String, usize, usize)> = Vec::new();
        match (self.batch_tenant(org_id), self.tenant_key::<T>()) {
            (Some(name), _) => charges.push((name.to_string(), data.item_count(), bytes)),
            (None, Some(key)) => {
                let default = self.default_tenant();
                data.retain_groups(&mut |group| {
                    let name = group.get(key).filter(|v| !v.is_empty()).unwrap_or(default);
                    let (items, bytes) = (group.items(), group.bytes());
                    if let Some(charge) = charges.iter_mut().find(|(n, _, _)| n == name) {
                        charge.1 += items;
                        charge.2 += bytes;
                    } else if charges.len() < MAX_ADMISSION_TENANTS {
                        // Past this many, the rest go uncharged rather than
                        // make admission cost more than the request.
                        charges.push((name.to_string(), items, bytes));
                    }
                    true
                });
            }
            (None, None) => {}
        }
        let mut state = self.state(T::SIGNAL);
        let mut accounts = Vec::with_capacity(charges.len());
        let mut wait = Duration::ZERO;
        for (name, _, _) in &charges {
            // An invalid tenant is not charged; processing drops its records.
            let account = self.resolve(&mut state, name, now);
            if let Some(account) = &account {
                wait = wait.max(state.tenants[account.slot].wait(now));
            }
            accounts.push(account.map(|a| a.slot));
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        let mut reservation = Reservation {
            processor: self.id.clone(),
            signal: T::SIGNAL,
            charges: Vec::with_capacity(charges.len()),
        };
        for ((name, items, bytes), slot) in charges.into_iter().zip(accounts) {
            let Some(slot) = slot else { continue };
            Self::charge(&mut state.tenants[slot], items, bytes, false, now);
            // Slots move when idle tenants are forgotten: keep the name.
            reservation
                .charges
                .push((name.into_boxed_str(), slot == 0, items, bytes));
        }
        Ok(reservation)
    }

    /// Gives back what [`TenantLimiter::admit`] charged for a push that was
    /// then not accepted, so that the sender's retry is not charged twice.
    pub fn release(&self, reservation: Reservation) {
        let mut state = self.state(reservation.signal);
        for (name, overflow, items, bytes) in reservation.charges {
            let slot = match state.index.get(&name) {
                _ if overflow => 0,
                Some(&slot) => slot,
                None => continue,
            };
            let tenant = &mut state.tenants[slot];
            if let Some(bucket) = &mut tenant.records {
                bucket.give(items as f64);
            }
            if let Some(bucket) = &mut tenant.bytes {
                bucket.give(bytes as f64);
            }
        }
    }

    /// Holds `batch` to its tenants' limits and pushes one batch per tenant
    /// onto `out` (none if everything was dropped).
    pub fn process<T: Fields>(&self, batch: Batch<T>, out: &mut Vec<Batch<T>>) {
        self.process_at(batch, out, Instant::now());
    }

    pub(super) fn process_at<T: Fields>(
        &self,
        mut batch: Batch<T>,
        out: &mut Vec<Batch<T>>,
        now: Instant,
    ) {
        let tick = self.ticks(now);
        let mut guard = self.state(T::SIGNAL);
        let state = &mut *guard;
        if now >= state.next_sweep {
            self.sweep(state, now, tick);
        }
        // Admitted: never dropped for rate; what admission charged is not
        // charged again (a tenant it did not see, because a processor
        // before this one set it, is charged now).
        let admission = batch.tenancy.admitted.clone().unwrap_or_default();
        let admitted = self.config.refuse && admission.admitted_by(&self.id);
        let charged = |name: &str| admitted && admission.charged(&self.id, name);
        let org_id = batch.tenancy.org_id.clone();
        let whole = self
            .batch_tenant(org_id.as_ref())
            .map(|name| self.resolve(state, name, now));
        if batch.items() == 0 {
            batch.tenancy.tenant = whole.flatten().map(|a| a.id(state));
            out.push(batch);
            return;
        }
        let mut tally = Tally::default();
        match whole {
            Some(None) => {
                tally.invalid = batch.items() as u64;
                tally.dropped_bytes = batch.bytes;
            }
            Some(Some(account)) if !self.has_group_limits::<T>() => {
                // One tenant, no limit on groups: one decision for the batch.
                let (items, bytes) = (batch.items(), batch.bytes);
                let tenant = &mut state.tenants[account.slot];
                let already = self.batch_tenant(org_id.as_ref()).is_some_and(&charged);
                match Self::check_rate(tenant, items, bytes, admitted, now) {
                    Ok(()) => {
                        Self::charge(tenant, items, bytes, already, now);
                        tally.keep(state, account, items);
                    }
                    Err(reason) => tally.drop(account.slot, reason, items, bytes),
                }
            }
            whole => {
                let whole = whole.flatten();
                let whole_charged = self.batch_tenant(org_id.as_ref()).is_some_and(&charged);
                let key = self.tenant_key::<T>();
                let default = self.default_tenant();
                batch.data.retain_groups(&mut |group| {
                    let (items, bytes) = (group.items(), group.bytes());
                    let (account, already) = match (&whole, key) {
                        (Some(account), _) => (Some(account.clone()), whole_charged),
                        (None, Some(key)) => {
                            let name = group.get(key).filter(|v| !v.is_empty()).unwrap_or(default);
                            (self.resolve(state, name, now), charged(name))
                        }
                        (None, None) => (None, false),
                    };
                    let Some(account) = account else {
                        tally.invalid += items as u64;
                        tally.dropped_bytes += bytes;
                        return false;
                    };
                    let tenant = &mut state.tenants[account.slot];
                    let verdict = Self::check_labels::<T>(tenant, group)
                        .and_then(|()| Self::check_rate(tenant, items, bytes, admitted, now))
                        .and_then(|()| Self::check_active::<T>(tenant, group, tick));
                    match verdict {
                        Ok(()) => {
                            Self::charge(tenant, items, bytes, already, now);
                            tally.keep(state, account, items);
                            true
                        }
                        Err(reason) => {
                            tally.drop(account.slot, reason, items, bytes);
                            false
                        }
                    }
                });
            }
        }
        self.count(state, &tally);
        if tally.dropped_bytes > 0 || tally.invalid > 0 || !tally.drops.is_empty() {
            batch.record(Outcome::Dropped);
            batch.bytes = batch.bytes.saturating_sub(tally.dropped_bytes);
        }
        let Tally {
            keys, group_keys, ..
        } = tally;
        if keys.len() <= 1 || batch.items() == 0 {
            match keys.into_iter().next() {
                Some(key) if batch.items() > 0 => {
                    batch.tenancy.tenant = Some(key.id);
                    out.push(batch);
                }
                _ => batch.drop_with(Outcome::Dropped),
            }
            return;
        }
        let mut order = Vec::with_capacity(keys.len());
        let mut next = group_keys.into_iter();
        let parts = batch.map_parts(|data| {
            data.partition(&mut |_| u64::from(next.next().unwrap_or(0)))
                .into_iter()
                .map(|(key, part)| {
                    order.push(key as usize);
                    part
                })
                .collect()
        });
        for (mut part, key) in parts.into_iter().zip(order) {
            part.tenancy.tenant = Some(keys[key].id.clone());
            out.push(part);
        }
    }

    fn default_tenant(&self) -> &str {
        self.config
            .default_tenant
            .to_str()
            .unwrap_or(DEFAULT_TENANT)
    }

    /// Whether this signal has limits that look at each group.
    fn has_group_limits<T: Fields>(&self) -> bool {
        let needs = |l: &Limits| match T::SIGNAL {
            Signal::Metrics => {
                l.max_active_series.is_some()
                    || l.max_labels_per_series.is_some()
                    || l.max_label_value_length.is_some()
            }
            Signal::Logs => {
                l.max_active_streams.is_some()
                    || l.max_labels_per_series.is_some()
                    || l.max_label_value_length.is_some()
            }
            Signal::Profiles => {
                l.max_labels_per_series.is_some() || l.max_label_value_length.is_some()
            }
            Signal::Traces => false,
        };
        needs(&self.config.limits) || self.config.overrides.values().any(needs)
    }

    /// The account of tenant `name`, tracking it if there is room; `None`
    /// if `name` is not a valid tenant ID.
    fn resolve(&self, state: &mut State, name: &str, now: Instant) -> Option<Account> {
        if let Some(&slot) = state.index.get(name) {
            return Some(Account {
                slot,
                overflow_id: None,
            });
        }
        let id = valid_tenant(name)?;
        let pinned = self.config.overrides.contains_key(name);
        // tenants[0] is the overflow account, not a tracked tenant.
        if state.tenants.len() > self.config.max_tenants && !pinned {
            return Some(Account {
                slot: 0,
                overflow_id: Some(id),
            });
        }
        let slot = state.tenants.len();
        state.tenants.push(Tenant::new(
            id,
            name.to_string(),
            self.config.limits_of(name),
            now,
        ));
        state.index.insert(name.into(), slot);
        self.tracked_gauge(state.signal)
            .set(state.tenants.len() as i64 - 1);
        Some(Account {
            slot,
            overflow_id: None,
        })
    }

    /// Label count and value length.
    fn check_labels<T: Fields>(tenant: &Tenant, group: &mut dyn Group) -> Result<(), Reason> {
        if T::NAMING != Naming::Labels {
            return Ok(());
        }
        let (max_labels, max_value) = (
            tenant.limits.max_labels_per_series,
            tenant.limits.max_label_value_length,
        );
        if max_labels.is_none() && max_value.is_none() {
            return Ok(());
        }
        let (labels, longest) = group.shape();
        if max_labels.is_some_and(|max| labels > max) {
            return Err(Reason::TooManyLabels);
        }
        if max_value.is_some_and(|max| longest > max) {
            return Err(Reason::LabelValueTooLong);
        }
        Ok(())
    }

    /// The rate limits; admitted data always passes (it is charged).
    fn check_rate(
        tenant: &mut Tenant,
        items: usize,
        bytes: usize,
        admitted: bool,
        now: Instant,
    ) -> Result<(), Reason> {
        if admitted {
            return Ok(());
        }
        if let Some(bucket) = &mut tenant.records
            && !bucket.allows(items as f64, now)
        {
            return Err(Reason::RateLimited);
        }
        if let Some(bucket) = &mut tenant.bytes
            && !bucket.allows(bytes as f64, now)
        {
            return Err(Reason::ByteRateLimited);
        }
        Ok(())
    }

    /// Takes a group's records and bytes from the buckets (unless admission
    /// `already` did) and marks the tenant seen.
    fn charge(tenant: &mut Tenant, items: usize, bytes: usize, already: bool, now: Instant) {
        tenant.last_seen = now;
        if already {
            return;
        }
        if let Some(bucket) = &mut tenant.records {
            bucket.take(items as f64);
        }
        if let Some(bucket) = &mut tenant.bytes {
            bucket.take(bytes as f64);
        }
    }

    /// Active series (metrics) and streams (logs): a new one past the limit
    /// is refused; a known one is marked seen.
    fn check_active<T: Fields>(
        tenant: &mut Tenant,
        group: &mut dyn Group,
        tick: u16,
    ) -> Result<(), Reason> {
        let (limit, reason) = match T::SIGNAL {
            Signal::Metrics => (tenant.limits.max_active_series, Reason::SeriesLimit),
            Signal::Logs => (tenant.limits.max_active_streams, Reason::StreamLimit),
            Signal::Traces | Signal::Profiles => (None, Reason::SeriesLimit),
        };
        match limit {
            Some(limit) if !tenant.active.touch(group.identity(), tick, limit) => Err(reason),
            _ => Ok(()),
        }
    }

    /// Expires series, forgets idle tenants, and brings gauges up to date.
    fn sweep(&self, state: &mut State, now: Instant, tick: u16) {
        // Ticks wrap after 65536; past half of that unswept, every entry is
        // older than the expiry and the ages could no longer tell.
        let stale = now.duration_since(state.last_sweep) > self.tick * (u32::from(u16::MAX) / 2);
        state.last_sweep = now;
        state.next_sweep = now + self.tick * u32::from(EXPIRY_TICKS / 4);
        let signal = state.signal;
        let mut i = 1;
        while i < state.tenants.len() {
            let tenant = &mut state.tenants[i];
            if stale {
                tenant.active.clear();
            } else {
                tenant.active.sweep(tick);
            }
            let idle = now.duration_since(tenant.last_seen) > self.config.active_expiry
                && tenant.is_idle(now);
            if !idle {
                if let Some(gauge) = &tenant.active_gauge {
                    gauge.set(tenant.active.len() as i64);
                }
                i += 1;
                continue;
            }
            let gone = state.tenants.swap_remove(i);
            state.index.remove(gone.label.as_str());
            if let Some(moved) = state.tenants.get(i) {
                state.index.insert(moved.label.as_str().into(), i);
            }
            self.forget(signal, &gone);
        }
        let overflow = &mut state.tenants[0];
        if stale {
            overflow.active.clear();
        } else {
            overflow.active.sweep(tick);
        }
        if let Some(gauge) = &overflow.active_gauge {
            gauge.set(overflow.active.len() as i64);
        }
        self.tracked_gauge(signal)
            .set(state.tenants.len() as i64 - 1);
    }

    /// Removes a forgotten tenant's series from the counter families, so
    /// that the `tenant` label's values stay bounded.
    fn forget(&self, signal: Signal, tenant: &Tenant) {
        for reason in ALL_REASONS {
            if tenant.dropped[reason as usize].is_some() {
                self.families
                    .dropped
                    .remove(&self.reason_labels(signal, &tenant.label, reason));
            }
        }
        if tenant.active_gauge.is_some() {
            self.families
                .active
                .remove(&self.tenant_labels(signal, &tenant.label));
        }
    }

    fn tenant_labels(&self, signal: Signal, tenant: &str) -> TenantLabels {
        TenantLabels {
            processor: self.processor.clone(),
            signal: signal.as_str(),
            tenant: tenant.to_string(),
        }
    }

    fn reason_labels(&self, signal: Signal, tenant: &str, reason: Reason) -> TenantReasonLabels {
        TenantReasonLabels {
            processor: self.processor.clone(),
            signal: signal.as_str(),
            tenant: tenant.to_string(),
            reason: reason.as_str(),
        }
    }

    fn component_labels(&self, signal: Signal) -> ComponentLabels {
        ComponentLabels {
            kind: "processor",
            component: self.processor.clone(),
            signal: signal.as_str(),
        }
    }

    fn tracked_gauge(&self, signal: Signal) -> Gauge {
        self.families
            .tracked
            .get_or_create(&self.component_labels(signal))
            .clone()
    }

    /// Adds one batch's drops to the counters, and refreshes the active
    /// gauges of the tenants it had.
    fn count(&self, state: &mut State, tally: &Tally) {
        let signal = state.signal;
        for &(slot, reason, items) in &tally.drops {
            let Tenant { label, dropped, .. } = &mut state.tenants[slot];
            dropped[reason as usize]
                .get_or_insert_with(|| {
                    let labels = self.reason_labels(signal, label, reason);
                    self.families.dropped.get_or_create(&labels).clone()
                })
                .inc_by(items);
            Telemetry::reason_counter(
                &self.dropped,
                &self.component_labels(signal),
                reason.as_str(),
            )
            .inc_by(items);
        }
        if tally.invalid > 0 {
            let labels = self.reason_labels(signal, INVALID, Reason::InvalidTenant);
            state
                .invalid
                .get_or_insert_with(|| self.families.dropped.get_or_create(&labels).clone())
                .inc_by(tally.invalid);
            Telemetry::reason_counter(
                &self.dropped,
                &self.component_labels(signal),
                Reason::InvalidTenant.as_str(),
            )
            .inc_by(tally.invalid);
        }
        if tally.overflow > 0 {
            self.families
                .overflow
                .get_or_create(&self.component_labels(signal))
                .inc_by(tally.overflow);
        }
        if matches!(signal, Signal::Metrics | Signal::Logs) {
            for key in &tally.keys {
                let Tenant {
                    label,
                    active,
                    active_gauge,
                    ..
                } = &mut state.tenants[key.slot];
                if active.len() == 0 && active_gauge.is_none() {
                    continue;
                }
                active_gauge
                    .get_or_insert_with(|| {
                        let labels = self.tenant_labels(signal, label);
                        self.families.active.get_or_create(&labels).clone()
                    })
                    .set(active.len() as i64);
            }
        }
    }
}

impl<T: Fields> Admitter<T> for TenantLimiter {
    fn admit(
        &self,
        org_id: Option<&HeaderValue>,
        data: &mut T,
        bytes: usize,
    ) -> Result<Reservation, Duration> {
        TenantLimiter::admit(self, org_id, data, bytes)
    }

    fn release(&self, reservation: Reservation) {
        TenantLimiter::release(self, reservation)
    }
}

/// Which tenant account a group is charged to; tenants past `max_tenants`
/// share account 0 but keep their own ID for export.
#[derive(Clone)]
pub(super) struct Account {
    slot: usize,
    overflow_id: Option<HeaderValue>,
}

impl Account {
    fn id(self, state: &State) -> HeaderValue {
        self.overflow_id
            .unwrap_or_else(|| state.tenants[self.slot].id.clone())
    }
}

/// What one batch did: the tenants it keeps, in order of first appearance
/// (and which one each kept group belongs to), and what it dropped.
#[derive(Default)]
pub(super) struct Tally {
    keys: Vec<Key>,
    group_keys: Vec<u32>,
    /// The last key used: consecutive groups mostly share a tenant.
    last: Option<u32>,
    drops: Vec<(usize, Reason, u64)>,
    invalid: u64,
    overflow: u64,
    dropped_bytes: usize,
}

impl Tally {
    fn keep(&mut self, state: &State, account: Account, items: usize) {
        if account.slot == 0 {
            self.overflow += items as u64;
        }
        let same = |key: &Key| {
            key.slot == account.slot
                && (key.slot != 0 || Some(&key.id) == account.overflow_id.as_ref())
        };
        let index = match self.last {
            Some(last) if same(&self.keys[last as usize]) => last,
            _ => match self.keys.iter().position(same) {
                Some(i) => i as u32,
                None => {
                    self.keys.push(Key {
                        slot: account.slot,
                        id: account.id(state),
                    });
                    self.keys.len() as u32 - 1
                }
            },
        };
        self.last = Some(index);
        self.group_keys.push(index);
    }

    fn drop(&mut self, slot: usize, reason: Reason, items: usize, bytes: usize) {
        self.dropped_bytes += bytes;
        match self
            .drops
            .iter_mut()
            .find(|(s, r, _)| *s == slot && *r == reason)
        {
            Some((_, _, n)) => *n += items as u64,
            None => self.drops.push((slot, reason, items as u64)),
        }
    }
}

pub(super) const ALL_REASONS: [Reason; Reason::COUNT] = [
    Reason::RateLimited,
    Reason::ByteRateLimited,
    Reason::SeriesLimit,
    Reason::StreamLimit,
    Reason::TooManyLabels,
    Reason::LabelValueTooLong,
    Reason::InvalidTenant,
];
