//! `[receivers.TYPE.NAME.server]`: the limits a receiver's listeners hold
//! their clients to. Every key is optional; the defaults suit a node agent.

use serde::Deserialize;

use super::ConnectionLimits;
use crate::config::{ByteSize, FieldError, HumanDuration};
use crate::net::body::BodyRules;

/// The table as written.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RawServerConfig {
    /// Connections a listener holds at once; more are refused (HTTP: 503).
    max_connections: Option<usize>,
    /// Time for a request line and headers: a slow or stalled client is
    /// cut off rather than holding a connection.
    read_header_timeout: Option<HumanDuration>,
    /// Time a connection with no request in flight stays open.
    idle_timeout: Option<HumanDuration>,
    /// Time for a request body's first bytes.
    read_body_timeout: Option<HumanDuration>,
    /// Body bytes per second that earn another second of
    /// `read_body_timeout`: a large body on a slow link is read, a trickle
    /// is not.
    min_body_rate: Option<ByteSize>,
}

/// A checked `server` table, with the request size cap of its receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    pub limits: ConnectionLimits,
    pub body: BodyRules,
}

impl RawServerConfig {
    /// The checked settings, with `max_body` the receiver's size cap; the
    /// problems are recorded under `server.*`.
    pub fn validate(&self, max_body: usize, errors: &mut Vec<FieldError>) -> ServerConfig {
        let defaults = ConnectionLimits::default();
        let max_connections = self.max_connections.unwrap_or(defaults.max_connections);
        if max_connections == 0 {
            errors.push(FieldError::new(
                "server.max_connections",
                "must be at least 1",
            ));
        }
        let at_least = |value: Option<HumanDuration>,
                        default: std::time::Duration,
                        field: &str,
                        errors: &mut Vec<FieldError>| {
            let value = value.map_or(default, |d| d.get());
            if value < std::time::Duration::from_millis(100) {
                errors.push(FieldError::new(
                    format!("server.{field}"),
                    "must be at least 100ms",
                ));
            }
            value
        };
        let read_header_timeout = at_least(
            self.read_header_timeout,
            defaults.read_header_timeout,
            "read_header_timeout",
            errors,
        );
        let idle_timeout = at_least(
            self.idle_timeout,
            defaults.idle_timeout,
            "idle_timeout",
            errors,
        );
        let body_timeout = at_least(
            self.read_body_timeout,
            std::time::Duration::from_secs(20),
            "read_body_timeout",
            errors,
        );
        let min_rate = self.min_body_rate.map_or(1024, |b| b.get());
        if min_rate == 0 {
            errors.push(FieldError::new(
                "server.min_body_rate",
                "must be at least 1B (per second)",
            ));
        }
        ServerConfig {
            limits: ConnectionLimits {
                max_connections,
                read_header_timeout,
                idle_timeout,
            },
            body: BodyRules {
                max: max_body,
                timeout: body_timeout,
                min_rate,
            },
        }
    }
}
