//! The tenant a push names: `X-Scope-OrgID`, as Grafana's backends read it
//! (Mimir, Loki, Tempo, Pyroscope). Push receivers put it on each batch
//! (`Batch::tenancy.org_id`) for `[processors.tenant] source = "header"`.

use http::HeaderValue;

/// The header (HTTP) or metadata key (gRPC) naming the sender's tenant.
pub const ORG_ID_HEADER: &str = "x-scope-orgid";

/// The counter reason of a request refused for its `X-Scope-OrgID`.
pub const INVALID_TENANT: &str = "invalid_tenant";

/// An `X-Scope-OrgID` that is no tenant ID: a client error, as it is for
/// Mimir and Loki, so the sender learns of it rather than its data landing
/// under another tenant.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("X-Scope-OrgID {0:?} is not a tenant ID (1 to 150 of a-z A-Z 0-9 ! - _ . * ' ( ))")]
pub struct InvalidOrgId(String);

/// The tenant a push names in `X-Scope-OrgID`, if it names one.
pub fn org_id(value: Option<&[u8]>) -> Result<Option<HeaderValue>, InvalidOrgId> {
    let Some(value) = value else {
        return Ok(None);
    };
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| crate::delivery::valid_tenant(v.trim()))
        .map(Some)
        .ok_or_else(|| {
            InvalidOrgId(String::from_utf8_lossy(&value[..value.len().min(160)]).into_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_ids_are_checked_as_grafana_backends_check_them() {
        assert_eq!(org_id(None), Ok(None));
        assert_eq!(
            org_id(Some(b" team-a ")),
            Ok(Some(HeaderValue::from_static("team-a")))
        );
        for bad in [&b""[..], b"..", b"a/b", b"\xff", &[b'x'; 151]] {
            assert!(org_id(Some(bad)).is_err(), "{bad:?}");
        }
        assert!(
            org_id(Some(b"a b"))
                .unwrap_err()
                .to_string()
                .contains("\"a b\" is not a tenant ID")
        );
    }
}
