//! A record's payload: a batch with what travels with it (its item count,
//! when it was queued, its tenant and org id), then its data in the
//! signal's stored form ([`crate::signal::Persist`]).

use bytes::Bytes;
use std::time::{SystemTime, UNIX_EPOCH};

use super::segment;
use crate::delivery::{Batch, Tenancy};
use crate::signal::SignalData;

/// Bytes at the start of each payload: flags, items, the time it was
/// queued; then the tenant and org id if flagged; then the data.
pub(super) const HEAD_PEEK: usize = 24;
pub(super) const HAS_TENANT: u8 = 1;
pub(super) const HAS_ORG_ID: u8 = 2;

/// A batch as a framed record, whose payload is: flags, items, when it was
/// queued, its tenant and org id, then its data.
pub(super) fn encode<T: SignalData>(batch: &Batch<T>) -> Vec<u8> {
    // The frame goes in front, filled in once the payload is written.
    let mut payload = Vec::with_capacity(segment::FRAME_LEN + batch.bytes + 64);
    payload.extend_from_slice(&[0; segment::FRAME_LEN]);
    let tenancy = &batch.tenancy;
    let flags = if tenancy.tenant.is_some() {
        HAS_TENANT
    } else {
        0
    } | if tenancy.org_id.is_some() {
        HAS_ORG_ID
    } else {
        0
    };
    payload.push(flags);
    prost::encoding::encode_varint(batch.items() as u64, &mut payload);
    prost::encoding::encode_varint(now_ms().max(0) as u64, &mut payload);
    for value in [&tenancy.tenant, &tenancy.org_id].into_iter().flatten() {
        prost::encoding::encode_varint(value.len() as u64, &mut payload);
        payload.extend_from_slice(value.as_bytes());
    }
    batch.data.persist(&mut payload);
    segment::seal(&mut payload);
    payload
}

/// Flags, items and queue time from the start of a payload.
pub(super) fn parse_head(mut head: &[u8]) -> Option<(u8, u64, i64)> {
    let (&flags, rest) = head.split_first()?;
    head = rest;
    let items = prost::encoding::decode_varint(&mut head).ok()?;
    let ms = prost::encoding::decode_varint(&mut head).ok()?;
    Some((flags, items, ms as i64))
}

/// A record's payload as data, its tenancy, its items and its queue time;
/// on failure, the items it claimed to hold.
pub(super) fn decode<T: SignalData>(payload: Vec<u8>) -> Result<(T, Tenancy, u64, i64), u64> {
    let payload = Bytes::from(payload);
    let mut buf = &payload[..];
    let (flags, items, enqueued_ms) = parse_head(buf).ok_or(0u64)?;
    buf = &buf[1..];
    let _ = prost::encoding::decode_varint(&mut buf);
    let _ = prost::encoding::decode_varint(&mut buf);
    let mut header = |present: bool| -> Result<Option<http::HeaderValue>, u64> {
        if !present {
            return Ok(None);
        }
        let len = prost::encoding::decode_varint(&mut buf).map_err(|_| items)? as usize;
        if len > buf.len() {
            return Err(items);
        }
        let (value, rest) = buf.split_at(len);
        buf = rest;
        http::HeaderValue::from_bytes(value)
            .map(Some)
            .map_err(|_| items)
    };
    let tenant = header(flags & HAS_TENANT != 0)?;
    let org_id = header(flags & HAS_ORG_ID != 0)?;
    let data = T::restore(payload.slice_ref(buf)).map_err(|_| items)?;
    let tenancy = Tenancy {
        tenant,
        org_id,
        admitted: None,
    };
    Ok((data, tenancy, items, enqueued_ms))
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
