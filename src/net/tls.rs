//! TLS for outgoing connections, with rustls: system roots plus an optional CA
//! file, an optional client certificate, and an explicit skip-verify switch.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::FieldError;

/// `tls = { ... }` of a network exporter.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct TlsConfig {
    /// PEM file of CA certificates trusted in addition to the system's.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for mutual TLS (needs `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate. Only for tests against self-signed
    /// servers: it removes the protection TLS exists for.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Name to verify the server certificate against, when it differs from the
    /// endpoint's host (e.g. connecting by IP).
    pub server_name: Option<String>,
}

impl TlsConfig {
    pub fn check(&self, errors: &mut Vec<FieldError>) {
        if self.cert_file.is_some() != self.key_file.is_some() {
            errors.push(FieldError::new("tls", "cert_file and key_file go together"));
        }
        for (field, path) in [
            ("tls.ca_file", &self.ca_file),
            ("tls.cert_file", &self.cert_file),
            ("tls.key_file", &self.key_file),
        ] {
            if let Some(path) = path
                && !path.is_file()
            {
                errors.push(FieldError::new(
                    field,
                    format!("{} is not a readable file", path.display()),
                ));
            }
        }
    }

    /// Builds the rustls client config. ALPN is left to the connector, which
    /// sets it from the HTTP versions it enables.
    pub fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Protocols)?;
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // A broken system certificate should not stop the others from working.
            let _ = roots.add(cert);
        }
        if let Some(ca_file) = &self.ca_file {
            let certs = CertificateDer::pem_file_iter(ca_file)
                .map_err(|e| TlsError::file("ca_file", ca_file, e))?;
            for cert in certs {
                let cert = cert.map_err(|e| TlsError::file("ca_file", ca_file, e))?;
                roots
                    .add(cert)
                    .map_err(|e| TlsError::file("ca_file", ca_file, e))?;
            }
        }
        let builder = builder.with_root_certificates(roots);
        let mut config = match (&self.cert_file, &self.key_file) {
            (Some(cert_file), Some(key_file)) => {
                let chain = CertificateDer::pem_file_iter(cert_file)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| TlsError::file("cert_file", cert_file, e))?;
                let key = PrivateKeyDer::from_pem_file(key_file)
                    .map_err(|e| TlsError::file("key_file", key_file, e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(TlsError::ClientCertificate)?
            }
            _ => builder.with_no_client_auth(),
        };
        if self.insecure_skip_verify {
            config
                .dangerous()
                .set_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)));
        }
        Ok(config)
    }
}

/// Why a TLS client cannot be set up from its settings.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS: {0}")]
    Protocols(rustls::Error),
    /// A certificate or key file that cannot be read or parsed.
    #[error("TLS {setting} {path}: {message}")]
    File {
        setting: &'static str,
        path: std::path::PathBuf,
        message: String,
    },
    #[error("TLS client certificate: {0}")]
    ClientCertificate(rustls::Error),
}

impl TlsError {
    fn file(setting: &'static str, path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Self::File {
            setting,
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

/// The verifier behind `insecure_skip_verify`: checks signatures (so the
/// handshake is well-formed) but trusts any certificate.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
