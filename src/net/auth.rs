//! HTTP client credentials shared by the components that speak HTTP:
//! basic auth and bearer tokens, literal or read from files (mounted Secrets).

use serde::Deserialize;
use std::path::PathBuf;

use super::http_client::ClientError;
use crate::config::FieldError;

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct BasicAuth {
    pub username: String,
    pub password: Option<String>,
    /// A file holding the password; read at start and again when it changes.
    pub password_file: Option<PathBuf>,
}

/// `basic_auth`, `bearer_token`, `bearer_token_file`: at most one.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Credentials {
    pub basic_auth: Option<BasicAuth>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
}

impl Credentials {
    /// Credentials from a config's three fields, with [`Self::check`]'s problems recorded.
    pub fn checked(
        basic_auth: Option<BasicAuth>,
        bearer_token: Option<String>,
        bearer_token_file: Option<std::path::PathBuf>,
        prefix: &str,
        errors: &mut Vec<FieldError>,
    ) -> Self {
        let credentials = Self {
            basic_auth,
            bearer_token,
            bearer_token_file,
        };
        credentials.check(prefix, errors);
        credentials
    }

    /// Records every problem; `prefix` is the path of the table they sit in.
    pub fn check(&self, prefix: &str, errors: &mut Vec<FieldError>) {
        let at = |field: &str| {
            if prefix.is_empty() {
                field.to_string()
            } else {
                format!("{prefix}.{field}")
            }
        };
        let ways = [
            self.basic_auth.is_some(),
            self.bearer_token.is_some(),
            self.bearer_token_file.is_some(),
        ];
        if ways.iter().filter(|&&b| b).count() > 1 {
            errors.push(FieldError::new(
                at("basic_auth"),
                "use one of basic_auth, bearer_token and bearer_token_file",
            ));
        }
        if let Some(auth) = &self.basic_auth
            && auth.password.is_some() == auth.password_file.is_some()
        {
            errors.push(FieldError::new(
                at("basic_auth"),
                "set exactly one of password and password_file",
            ));
        }
        // A credentials file is not looked for here: it often exists only
        // where ferro runs (a pod's service-account token), not where the
        // config is validated. Starting the component reads it, and fails
        // naming the file if it cannot.
    }

    /// The `Authorization` header value, reading any file now.
    pub fn header(&self) -> Result<Option<http::HeaderValue>, ClientError> {
        use base64::Engine;
        let value = if let Some(auth) = &self.basic_auth {
            let password = match (&auth.password, &auth.password_file) {
                (Some(p), _) => p.clone(),
                (None, Some(file)) => std::fs::read_to_string(file)
                    .map_err(|e| ClientError::Secret {
                        setting: "basic_auth.password_file",
                        path: file.clone(),
                        source: e,
                    })?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
                (None, None) => String::new(),
            };
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{password}", auth.username));
            Some(format!("Basic {token}"))
        } else if let Some(token) = &self.bearer_token {
            Some(format!("Bearer {token}"))
        } else if let Some(file) = &self.bearer_token_file {
            let token = std::fs::read_to_string(file).map_err(|e| ClientError::Secret {
                setting: "bearer_token_file",
                path: file.clone(),
                source: e,
            })?;
            Some(format!("Bearer {}", token.trim()))
        } else {
            None
        };
        value
            .map(|v| http::HeaderValue::from_str(&v).map_err(|_| ClientError::InvalidCredentials))
            .transpose()
    }
}

/// The `Authorization` header a client sends. One made from a file (a
/// mounted Secret, or a service-account token the kubelet rotates in
/// place) is read again whenever the file changes, as Prometheus re-reads
/// its token files; while the file cannot be read, the last value read is
/// kept and the failure logged.
#[derive(Debug)]
pub struct Authorization {
    credentials: Credentials,
    /// The file the value comes from, if any.
    file: Option<PathBuf>,
    /// The file's modification time when last read, and the value then.
    read: std::sync::Mutex<(Option<std::time::SystemTime>, Option<http::HeaderValue>)>,
}

impl Authorization {
    /// The header of `credentials`, reading any file now: a file that
    /// cannot be read at start is an error.
    pub fn new(credentials: &Credentials) -> Result<Self, ClientError> {
        let file = credentials
            .bearer_token_file
            .clone()
            .or_else(|| credentials.basic_auth.as_ref()?.password_file.clone());
        let modified = file.as_deref().and_then(modified);
        Ok(Self {
            credentials: credentials.clone(),
            file,
            read: std::sync::Mutex::new((modified, credentials.header()?)),
        })
    }

    /// The value to send now.
    pub fn current(&self) -> Option<http::HeaderValue> {
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(file) = &self.file {
            let now = modified(file);
            if now.is_some() && now != read.0 {
                match self.credentials.header() {
                    Ok(value) => *read = (now, value),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the credentials file again; sending the last value read")
                    }
                }
            }
        }
        read.1.clone()
    }
}

fn modified(file: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(file).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_exclusivity() {
        let basic: Credentials =
            toml::from_str("basic_auth = { username = \"user\", password = \"pass\" }").unwrap();
        assert_eq!(basic.header().unwrap().unwrap(), "Basic dXNlcjpwYXNz");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        let bearer = Credentials {
            bearer_token_file: Some(file),
            ..Default::default()
        };
        assert_eq!(bearer.header().unwrap().unwrap(), "Bearer s3cret");
        let both: Credentials = toml::from_str(
            "bearer_token = \"t\"\nbasic_auth = { username = \"u\", password = \"p\" }",
        )
        .unwrap();
        let mut errors = Vec::new();
        both.check("", &mut errors);
        assert!(errors[0].message.contains("use one of"));
        assert_eq!(Credentials::default().header().unwrap(), None);
    }

    #[test]
    fn a_token_file_is_read_again_when_it_changes_and_kept_when_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "first\n").unwrap();
        let credentials = Credentials {
            bearer_token_file: Some(file.clone()),
            ..Default::default()
        };
        let auth = Authorization::new(&credentials).unwrap();
        assert_eq!(auth.current().unwrap(), "Bearer first");
        // Rotated in place, as the kubelet rotates a service-account token.
        std::fs::write(&file, "second\n").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(auth.current().unwrap(), "Bearer second");
        std::fs::remove_file(&file).unwrap();
        assert_eq!(
            auth.current().unwrap(),
            "Bearer second",
            "the last value read"
        );
        let literal = Authorization::new(&Credentials {
            bearer_token: Some("t".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(literal.current().unwrap(), "Bearer t");
        assert!(
            Authorization::new(&credentials).is_err(),
            "a missing file at start"
        );
    }
}
