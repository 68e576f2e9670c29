//! A kubelet stand-in: HTTPS on 127.0.0.1 with a test certificate, pages at
//! the kubelet's metrics paths (`/metrics`, `/metrics/cadvisor`,
//! `/metrics/probes`), and the kubelet's rule for them: a request without
//! the right bearer token gets 401 (the real kubelet asks the API server
//! whether the token may `get nodes/metrics`; here one token is allowed).

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::sink::TestCert;

/// One request as the stand-in saw it: path and whether it was allowed.
pub type Seen = (String, bool);

pub struct Kubelet {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    token: Arc<Mutex<String>>,
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
        let (log, wanted) = (seen.clone(), token.clone());
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap| {
            let (log, pages, wanted) = (log.clone(), pages.clone(), wanted.clone());
            async move {
                let wanted = format!("Bearer {}", wanted.lock().unwrap());
                let allowed = headers
                    .get(axum::http::header::AUTHORIZATION)
                    .is_some_and(|v| v.as_bytes() == wanted.as_bytes());
                log.lock().unwrap().push((uri.path().to_string(), allowed));
                if !allowed {
                    return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
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
        Kubelet { addr, seen, token }
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
