//! Network plumbing shared by the exporters: TLS client settings and the HTTP
//! client built on hyper and rustls (the same stack tonic uses).

pub mod auth;
pub mod http_client;
pub mod tls;
