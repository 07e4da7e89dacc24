//! The reqwest client every HTTP caller of ergon builds the same way (the `http` and `llm`
//! services, the `http` connector): TLS, default headers, authentication.
//!
//! **TLS** is rustls on the `ring` provider, verifying servers against the platform's
//! roots (rustls-platform-verifier), plus the PEM certificates of `ca_file` when given.
//! reqwest reads rustls' process-wide default provider; [`ClientOptions::build`] installs
//! `ring` as that default when none is installed yet (a process that installed another
//! one first keeps it).

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use ergon_core::TaskError;
use ergon_core::config::ConfigIssue;

use ergon_core::config::secret::Secret;

/// `auth`: how requests authenticate, sent as the `Authorization` header of every request
/// (marked sensitive: reqwest never prints it).
///
/// ```toml
/// auth = { bearer = "${API_TOKEN}" }
/// # or
/// auth = { basic = { user = "ergon", password = "${API_PASSWORD}" } }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// `Authorization: Basic base64(user:password)` (RFC 7617).
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: Secret,
    },
}

impl Auth {
    /// Checks the values; the path is relative to `auth`.
    ///
    /// # Errors
    ///
    /// An empty token or user name.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        match self {
            Auth::Bearer(token) if token.is_empty() => Err(ConfigIssue::new(
                "bearer",
                "is empty (an unset variable?): give the token, e.g. \"${API_TOKEN}\"",
            )),
            Auth::Basic { user, .. } if user.is_empty() => {
                Err(ConfigIssue::new("basic.user", "must not be empty"))
            }
            _ => Ok(()),
        }
    }

    /// The `Authorization` header's value, marked sensitive.
    fn header(&self) -> Result<HeaderValue, TaskError> {
        let text = match self {
            Auth::Bearer(token) => format!("Bearer {}", token.expose()),
            Auth::Basic { user, password } => {
                let pair = format!("{user}:{}", password.expose());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| {
            TaskError::system("auth: the credentials are not a valid header value").non_retryable()
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// What an HTTP client is built from: the keys `headers`, `auth` and `ca_file` that every
/// HTTP-speaking config table shares.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientOptions {
    /// Headers sent with every request.
    pub headers: BTreeMap<String, String>,
    /// Credentials sent with every request.
    pub auth: Option<Auth>,
    /// PEM certificates trusted besides the platform's roots (resolved path).
    pub ca_file: Option<PathBuf>,
}

impl ClientOptions {
    /// Checks header names and values and the credentials; paths are relative to the table
    /// holding the keys.
    ///
    /// # Errors
    ///
    /// A header that is not valid HTTP, an `Authorization` header next to `auth`, empty
    /// credentials, an empty `ca_file`.
    pub fn validate(&self) -> Result<(), ConfigIssue> {
        for (name, value) in &self.headers {
            let key = format!("headers.{name}");
            let parsed = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ConfigIssue::new(&key, "is not a valid header name"))?;
            HeaderValue::from_str(value)
                .map_err(|_| ConfigIssue::new(&key, "is not a valid header value"))?;
            if parsed == AUTHORIZATION && self.auth.is_some() {
                return Err(ConfigIssue::new(
                    &key,
                    "conflicts with `auth`: give the credentials once",
                ));
            }
        }
        if let Some(auth) = &self.auth {
            auth.validate().map_err(|issue| issue.under("auth"))?;
        }
        if self
            .ca_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(ConfigIssue::new("ca_file", "must not be empty"));
        }
        Ok(())
    }

    /// Builds the client (no connection is made; `ca_file` is read now).
    ///
    /// # Errors
    ///
    /// A non-retryable system error naming `what` (the service or connector) when
    /// `ca_file` cannot be read or holds no certificate, or the client cannot be built.
    pub fn build(&self, what: &str) -> Result<reqwest::Client, TaskError> {
        let fail =
            |message: String| TaskError::system(format!("{what}: {message}")).non_retryable();
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| fail(format!("header `{name}` is not a valid header name")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| fail(format!("header `{name}` has an invalid value")))?;
            headers.insert(name, value);
        }
        if let Some(auth) = &self.auth {
            headers.insert(AUTHORIZATION, auth.header()?);
        }
        let mut builder = reqwest::Client::builder().default_headers(headers);
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path).map_err(|err| {
                fail(format!("cannot read ca_file {}", path.display())).with_source(err)
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|err| {
                fail(format!("ca_file {} is not PEM", path.display())).with_source(err)
            })?;
            if certs.is_empty() {
                return Err(fail(format!(
                    "ca_file {} holds no certificate",
                    path.display()
                )));
            }
            builder = builder.tls_certs_merge(certs);
        }
        install_ring();
        builder
            .build()
            .map_err(|err| fail("cannot create the HTTP client".into()).with_source(err))
    }
}

/// Installs rustls' `ring` provider as the process default, unless one is installed.
///
/// reqwest (built with `rustls-no-provider`) reads the default when it builds a client,
/// and panics without one: call this before building any reqwest client of the process.
pub fn install_ring() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err: another thread installed one meanwhile, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Checks a base URL: `http://` or `https://`, with a host and no credentials in it.
///
/// # Errors
///
/// An issue at `key`.
pub fn validate_url(key: &str, url: &str) -> Result<reqwest::Url, ConfigIssue> {
    if url.is_empty() {
        return Err(ConfigIssue::new(
            key,
            "is required, e.g. \"https://api.example.com/v1\"",
        ));
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|err| ConfigIssue::new(key, format!("is not a URL: {err}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ConfigIssue::new(
            key,
            format!(
                "scheme `{}` is not supported: use http:// or https://",
                parsed.scheme()
            ),
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ConfigIssue::new(
            key,
            "must not carry credentials: put them in `auth`",
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        let auth = Auth::Basic {
            user: "ergon".into(),
            password: Secret::new("hunter2"),
        };
        let options = ClientOptions {
            auth: Some(auth.clone()),
            ..ClientOptions::default()
        };
        assert!(!format!("{options:?}").contains("hunter2"));
        let client = options.build("service `api`").unwrap();
        assert!(!format!("{client:?}").contains("aHVudGVyMg"), "{client:?}");
        assert!(auth.header().unwrap().is_sensitive());
        assert_eq!(Auth::Bearer(Secret::new("t")).header().unwrap(), "Bearer t");
    }

    #[test]
    fn bad_options_name_their_key() {
        let issue = |options: ClientOptions| options.validate().unwrap_err().path;
        let header = |name: &str, value: &str| ClientOptions {
            headers: [(name.to_owned(), value.to_owned())].into(),
            ..ClientOptions::default()
        };
        assert_eq!(issue(header("bad name", "x")), "headers.bad name");
        assert_eq!(issue(header("x-a", "line\nbreak")), "headers.x-a");
        let both = ClientOptions {
            auth: Some(Auth::Bearer(Secret::new("t"))),
            ..header("Authorization", "Bearer u")
        };
        assert_eq!(issue(both), "headers.Authorization");
        let empty = ClientOptions {
            auth: Some(Auth::Bearer(Secret::default())),
            ..ClientOptions::default()
        };
        assert_eq!(issue(empty), "auth.bearer");
        assert_eq!(validate_url("u", "ftp://x").unwrap_err().path, "u");
        assert!(validate_url("u", "https://u:p@x").is_err());
        assert!(validate_url("u", "https://x/v1").is_ok());
    }
}
