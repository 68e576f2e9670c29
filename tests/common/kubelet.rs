//! A kubelet stand-in: HTTPS on 127.0.0.1 with a test certificate, pages at
//! the kubelet's metrics paths (`/metrics`, `/metrics/cadvisor`,
//! `/metrics/probes`), and the kubelet's rule for them: a request without
//! the right bearer token gets 401 (the real kubelet asks the API server
//! whether the token may `get nodes/metrics`; here one token is allowed).
//! A path can be told to fail ([`Failure`]): answer 500, or hang without
//! answering, as an overloaded kubelet does.

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::sink::TestCert;

/// One request as the stand-in saw it: path and whether it was allowed.
pub type Seen = (String, bool);

/// How a path fails.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Failure {
    /// `500 Internal Server Error` with the kubelet's kind of message.
    Status500,
    /// Headers never come (the client's timeout ends it).
    Hang,
}

type Failures = Arc<Mutex<BTreeMap<String, Failure>>>;

pub struct Kubelet {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    token: Arc<Mutex<String>>,
    failures: Failures,
}

impl Kubelet {
    /// Serves `pages` (path → page) to requests with `Bearer <token>`.
    pub async fn start(
        cert: &TestCert,
        token: &str,
        pages: BTreeMap<&'static str, String>,
    ) -> Kubelet {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let token = Arc::new(Mutex::new(token.to_string()));
        let pages = Arc::new(pages);
        let failures: Failures = Arc::default();
        let (log, wanted, failing) = (seen.clone(), token.clone(), failures.clone());
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap| {
            let (log, pages, wanted) = (log.clone(), pages.clone(), wanted.clone());
            let failure = failing.lock().unwrap().get(uri.path()).copied();
            async move {
                let wanted = format!("Bearer {}", wanted.lock().unwrap());
                let allowed = headers
                    .get(axum::http::header::AUTHORIZATION)
                    .is_some_and(|v| v.as_bytes() == wanted.as_bytes());
                log.lock().unwrap().push((uri.path().to_string(), allowed));
                if !allowed {
                    return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
                }
                match failure {
                    Some(Failure::Status500) => {
                        return (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "failed to get container stats: context deadline exceeded",
                        )
                            .into_response();
                    }
                    Some(Failure::Hang) => std::future::pending::<()>().await,
                    None => {}
                }
                match pages.get(uri.path()) {
                    Some(page) => (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        page.clone(),
                    )
                        .into_response(),
                    None => (StatusCode::NOT_FOUND, "404 page not found").into_response(),
                }
            }
        });
        let addr = cert.serve(app).await;
        Kubelet {
            addr,
            seen,
            token,
            failures,
        }
    }

    /// Makes `path` fail as `failure` says, or (with `None`) serve again.
    pub fn set_failure(&self, path: &str, failure: Option<Failure>) {
        let mut failures = self.failures.lock().unwrap();
        match failure {
            Some(failure) => failures.insert(path.to_string(), failure),
            None => failures.remove(path),
        };
    }

    /// From now on only `token` is allowed (a rotated service-account token).
    pub fn set_token(&self, token: &str) {
        *self.token.lock().unwrap() = token.to_string();
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}
