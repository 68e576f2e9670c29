//! One value per signal, for the code that is the same for every signal:
//! an exporter's queues, the pipelines a receiver feeds, the wiring of a
//! topology. Written once, generic over the signal, instead of one arm per
//! signal.
//!
//! A [`SignalFamily`] names the type a value has for each signal
//! (`Option<Outbox<T>>`, `BTreeMap<ComponentId, PipelineInputs<T>>`);
//! [`PerSignal`] holds one of each; [`SignalData::pick`](super::SignalData)
//! reaches the one of a signal type, and [`for_signal!`](crate::for_signal)
//! turns a runtime [`Signal`](super::Signal) into that type.

use super::{Logs, Metrics, Profiles, Traces};

/// A type for each signal: `Of<Traces>`, `Of<Metrics>`, …
pub trait SignalFamily {
    type Of<T>;
}

/// One `F::Of<T>` for each signal `T`.
pub struct PerSignal<F: SignalFamily> {
    pub traces: F::Of<Traces>,
    pub metrics: F::Of<Metrics>,
    pub logs: F::Of<Logs>,
    pub profiles: F::Of<Profiles>,
}

impl<F: SignalFamily> Default for PerSignal<F>
where
    F::Of<Traces>: Default,
    F::Of<Metrics>: Default,
    F::Of<Logs>: Default,
    F::Of<Profiles>: Default,
{
    fn default() -> Self {
        Self {
            traces: Default::default(),
            metrics: Default::default(),
            logs: Default::default(),
            profiles: Default::default(),
        }
    }
}

impl<F: SignalFamily> Clone for PerSignal<F>
where
    F::Of<Traces>: Clone,
    F::Of<Metrics>: Clone,
    F::Of<Logs>: Clone,
    F::Of<Profiles>: Clone,
{
    fn clone(&self) -> Self {
        Self {
            traces: self.traces.clone(),
            metrics: self.metrics.clone(),
            logs: self.logs.clone(),
            profiles: self.profiles.clone(),
        }
    }
}

/// How a signal type finds its own value in a [`PerSignal`]; a supertrait
/// of [`SignalData`](super::SignalData), so every signal has it.
pub trait Pick: Sized {
    fn pick<F: SignalFamily>(all: &PerSignal<F>) -> &F::Of<Self>;
    fn pick_mut<F: SignalFamily>(all: &mut PerSignal<F>) -> &mut F::Of<Self>;
}

macro_rules! pick {
    ($type:ty, $field:ident) => {
        impl Pick for $type {
            fn pick<F: SignalFamily>(all: &PerSignal<F>) -> &F::Of<Self> {
                &all.$field
            }
            fn pick_mut<F: SignalFamily>(all: &mut PerSignal<F>) -> &mut F::Of<Self> {
                &mut all.$field
            }
        }
    };
}

pick!(Traces, traces);
pick!(Metrics, metrics);
pick!(Logs, logs);
pick!(Profiles, profiles);

/// Runs `$body` with `$T` the data type of the runtime signal `$signal`:
/// `for_signal!(pipeline.signal, T => wire::<T>(...))`.
#[macro_export]
macro_rules! for_signal {
    ($signal:expr, $T:ident => $body:expr) => {
        match $signal {
            $crate::signal::Signal::Traces => {
                type $T = $crate::signal::Traces;
                $body
            }
            $crate::signal::Signal::Metrics => {
                type $T = $crate::signal::Metrics;
                $body
            }
            $crate::signal::Signal::Logs => {
                type $T = $crate::signal::Logs;
                $body
            }
            $crate::signal::Signal::Profiles => {
                type $T = $crate::signal::Profiles;
                $body
            }
        }
    };
}
