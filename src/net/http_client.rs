//! The HTTP(S) connector and client the exporters share.

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

use super::tls::{TlsConfig, TlsError};

pub type Connector = HttpsConnector<HttpConnector>;
pub type HttpClient = Client<Connector, Full<Bytes>>;

/// Which HTTP versions a connection may speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Versions {
    /// gRPC: HTTP/2 only (h2c in plain text, ALPN `h2` over TLS).
    Http2Only,
    /// Plain HTTP APIs: HTTP/1.1, or HTTP/2 where TLS ALPN agrees.
    Any,
}

/// Why an HTTP client cannot be built from its settings. Never retryable:
/// the settings (or the files they name) must change.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("tls.server_name: {0}")]
    ServerName(String),
    /// A password or token file that cannot be read.
    #[error("{setting} {}: {source}", path.display())]
    Secret {
        setting: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the credentials are not a valid header value")]
    InvalidCredentials,
    /// An endpoint the client library refuses.
    #[error("{0}")]
    Endpoint(String),
}

/// A connector for `http://` and `https://` endpoints with `tls` settings.
pub fn connector(tls: &TlsConfig, versions: Versions) -> Result<Connector, ClientError> {
    let config = tls.client_config()?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http();
    let builder = match &tls.server_name {
        Some(name) => {
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(
                rustls::pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| ClientError::ServerName(e.to_string()))?,
            ))
        }
        None => builder,
    };
    Ok(match versions {
        Versions::Http2Only => builder.enable_http2().wrap_connector(http),
        Versions::Any => builder.enable_all_versions().wrap_connector(http),
    })
}

/// A [`client`] over `tls` and the `Authorization` header of `credentials`:
/// what a scrape job or an exporter sends with.
pub fn authorized(
    tls: &TlsConfig,
    credentials: &crate::net::auth::Credentials,
) -> Result<(HttpClient, crate::net::auth::Authorization), ClientError> {
    Ok((
        client(tls)?,
        crate::net::auth::Authorization::new(credentials)?,
    ))
}

/// An HTTP client over [`connector`].
pub fn client(tls: &TlsConfig) -> Result<HttpClient, ClientError> {
    let connector = connector(tls, Versions::Any)?;
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector))
}
