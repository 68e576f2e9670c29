//! A receiver that is running, as the topology holds it: stopped in two
//! steps (stop taking, then finish), told of a reload before it happens.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ReceiverConfig;
use crate::config::ComponentId;
use crate::net::server::Attached;

/// A receiver that is running: its tasks, and the routes it attached to
/// the servers on its addresses.
pub struct RunningReceiver {
    pub id: ComponentId,
    /// What it listens on, by name (`grpc`, `http`).
    listening: Vec<(&'static str, Attached)>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    on_reload: Option<ReloadHook>,
    /// Whether its tasks still send as they stop (staleness markers):
    /// its pipelines close only once they have ended.
    sends_as_it_stops: bool,
}

/// What a receiver does, given its successor's config, before a reload stops
/// it.
pub type ReloadHook = Box<dyn Fn(Option<&ReceiverConfig>) + Send + Sync>;

impl RunningReceiver {
    pub fn new(id: ComponentId, stop: CancellationToken, tasks: Vec<JoinHandle<()>>) -> Self {
        Self {
            id,
            listening: Vec::new(),
            stop,
            tasks,
            on_reload: None,
            sends_as_it_stops: false,
        }
    }

    /// This receiver, whose tasks still send as they stop: the topology
    /// waits for them before it closes their pipelines.
    pub fn sending_as_it_stops(mut self) -> Self {
        self.sends_as_it_stops = true;
        self
    }

    pub fn sends_as_it_stops(&self) -> bool {
        self.sends_as_it_stops
    }

    /// This receiver with the routes it attached, by listener name.
    pub fn listening(mut self, listening: Vec<(&'static str, Attached)>) -> Self {
        self.listening = listening;
        self
    }

    /// Where it listens: `(name, address)`.
    pub fn addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        self.listening
            .iter()
            .map(|(name, attached)| (*name, attached.local_addr()))
            .collect()
    }

    /// This receiver with what it must do before a reload stops it (see
    /// [`Self::before_reload`]).
    pub fn with_reload_hook(mut self, hook: ReloadHook) -> Self {
        self.on_reload = Some(hook);
        self
    }

    /// Before a reload stops this receiver: tells it what `next` (the same
    /// receiver in the next config, if any) will run, so that a scrape
    /// receiver marks stale the series of the targets the next config
    /// drops, and only those.
    pub fn before_reload(&self, next: Option<&ReceiverConfig>) {
        if let Some(hook) = &self.on_reload {
            hook(next);
        }
    }

    /// Stops taking data: its tasks are told to stop and its routes
    /// detached (new requests wait for the next receiver on the address);
    /// waits up to `grace` for the requests in flight. Its tasks may still
    /// be finishing: see [`Self::finish`].
    pub async fn stop_taking(&self, grace: Duration) -> bool {
        self.stop.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        let mut finished = true;
        for (_, attached) in &self.listening {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            finished &= attached.detach(left).await;
        }
        finished
    }

    /// Waits until `deadline` for its tasks to end (a log tailer records
    /// the acknowledgements it is owed meanwhile), then stops them.
    pub async fn finish(self, deadline: tokio::time::Instant) {
        let mut tasks = self.tasks;
        let done = tokio::time::timeout_at(deadline, async {
            for task in &mut tasks {
                let _ = task.await;
            }
        })
        .await;
        if done.is_err() {
            tracing::warn!(receiver = %self.id, "did not finish in time; stopped");
            for task in tasks {
                task.abort();
            }
        }
    }
}
