use super::*;
use crate::config::{HumanDuration, Validate};
use crate::delivery::Batch;
use crate::delivery::Ticket;
use crate::signal::Traces;
use crate::signal::traces::tests::sample;

fn input(spans: usize) -> Batch<Traces> {
    Batch::new(sample(1, 1, spans), Ticket::untracked())
}

fn batcher(size: usize, max: Option<usize>) -> Batcher<Traces> {
    Batcher::new(BatchConfig {
        send_batch_size: size,
        send_batch_max_size: max,
        timeout: HumanDuration::from_secs(1),
    })
}

#[tokio::test]
async fn sends_when_the_size_is_reached() {
    let mut b = batcher(10, None);
    let mut out = Vec::new();
    b.push(input(4), &mut out);
    b.push(input(4), &mut out);
    assert!(out.is_empty());
    assert!(b.deadline().is_some());
    b.push(input(4), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].items(),
        12,
        "without a max size the whole batch goes"
    );
    assert!(b.deadline().is_none());
}

#[tokio::test]
async fn splits_at_the_max_size_keeping_every_item() {
    let mut b = batcher(10, Some(10));
    let mut out = Vec::new();
    b.push(input(25), &mut out);
    let sizes: Vec<usize> = out.iter().map(|b| b.items()).collect();
    assert_eq!(sizes, vec![10, 10, 5]);
}

/// The timeout runs on tokio's clock, here paused: a partial batch goes out
/// when its first item has waited `timeout`, not a moment before, and a
/// later item does not push the deadline back.
#[tokio::test(start_paused = true)]
async fn a_partial_batch_goes_out_when_its_oldest_item_has_waited_the_timeout() {
    let mut b = batcher(100, None);
    let mut out = Vec::new();
    b.push(input(3), &mut out);
    let deadline = b.deadline().expect("a deadline for the pending batch");
    tokio::time::advance(std::time::Duration::from_millis(600)).await;
    b.push(input(2), &mut out);
    assert_eq!(b.deadline(), Some(deadline), "the oldest item sets it");
    tokio::time::advance(std::time::Duration::from_millis(399)).await;
    b.flush_due(tokio::time::Instant::now(), &mut out);
    assert!(out.is_empty(), "not before the timeout");
    tokio::time::advance(std::time::Duration::from_millis(1)).await;
    b.flush_due(tokio::time::Instant::now(), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].items(), 5);
    assert!(b.deadline().is_none());
}

#[tokio::test]
async fn flush_emits_the_partial_batch() {
    let mut b = batcher(100, None);
    let mut out = Vec::new();
    b.push(input(3), &mut out);
    b.flush(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].items(), 3);
    out.clear();
    b.flush(&mut out);
    assert!(out.is_empty(), "nothing pending, nothing sent");
}

#[test]
fn config_checks_sizes() {
    let raw: RawBatchConfig =
        toml::from_str("send_batch_size = 100\nsend_batch_max_size = 10").unwrap();
    let errors = raw.validate().unwrap_err();
    assert_eq!(errors[0].field, "send_batch_max_size");
    let raw: RawBatchConfig = toml::from_str("send_batch_max_size = 0\ntimeout = \"1s\"").unwrap();
    let config = raw.validate().unwrap();
    assert_eq!(config.send_batch_max_size, None);
    assert_eq!(config.timeout, HumanDuration::from_secs(1));
}
