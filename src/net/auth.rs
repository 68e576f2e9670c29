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
    /// A file holding the password; read at start and on reload.
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
        if let Some(auth) = &self.basic_auth {
            if auth.password.is_some() == auth.password_file.is_some() {
                errors.push(FieldError::new(
                    at("basic_auth"),
                    "set exactly one of password and password_file",
                ));
            }
            if let Some(file) = &auth.password_file
                && !file.is_file()
            {
                errors.push(FieldError::new(
                    at("basic_auth.password_file"),
                    format!("{} is not a readable file", file.display()),
                ));
            }
        }
        if let Some(file) = &self.bearer_token_file
            && !file.is_file()
        {
            errors.push(FieldError::new(
                at("bearer_token_file"),
                format!("{} is not a readable file", file.display()),
            ));
        }
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
}
