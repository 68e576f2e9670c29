//! Network plumbing: TLS client settings and the HTTP client built on hyper
//! and rustls (the same stack tonic uses) for the exporters and scrapers;
//! the servers receivers attach to, which outlive reloads and hold clients
//! to limits ([`server`]); and reading request bodies under those limits
//! ([`body`]).

pub mod auth;
pub mod body;
pub mod http_client;
pub mod server;
pub mod tls;

/// An error and its sources, joined: hyper's top-level messages alone
/// ("client error (Connect)") do not say what went wrong.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
