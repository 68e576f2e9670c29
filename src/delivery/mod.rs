//! What travels with data through a pipeline so that memory is accounted and
//! delivery can be acknowledged.
//!
//! A receiver takes a [`Ticket`] from the process-wide [`MemoryLimiter`] for the
//! bytes it accepts; the ticket rides in the [`Batch`] through processors,
//! batching, fan-out and exporter queues, and gives its bytes back when the
//! last copy of the data is gone (sent, or dropped and counted). A receiver
//! that must know the outcome (a log tailer advancing its positions) attaches
//! an [`AckWaiter`]: it resolves once every copy is finished, with the worst
//! outcome any copy had.
//!
//! A batch also carries its [`Tenancy`]: the `X-Scope-OrgID` the push request
//! came with, and the tenant the tenant processor resolved, which exporters
//! send per request. Batches of different tenants are never merged.
//!
//! Between stages, everything moves through the types here, so that
//! receivers, processors and exporters share them without knowing the
//! topology that wires them:
//! - [`PipelineInputs`]: the pipelines one receiver feeds with one signal,
//!   all or none, answering with a [`Refusal`] when they stay full;
//! - [`ExporterInput`]: one exporter's bounded [`Queue`] as a pipeline sees it;
//! - [`Admitter`]: what a pipeline asks before a push is accepted (the
//!   tenant limits that refuse rather than drop).

mod batch;
mod channel;
pub mod checkpoint;
pub mod disk;
mod progress;
mod queue;

pub use batch::{
    AckWaiter, Acknowledgements, Admission, Batch, MemoryLimiter, Outcome, Reservation,
    TENANT_RULE, Tenancy, Ticket, valid_tenant,
};
pub use channel::{Admitter, ExporterInput, PipelineInputs, Refusal, ToPipelines, deliver_all};
pub use progress::{Acked, InFlight};
pub use queue::{OnFull, PushError, Queue, QueueConfig, QueueType, queue_setting};
