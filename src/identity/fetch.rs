//! Reading an issuer's JWKS document: from a local file, or over HTTPS with the same
//! hyper / hyper-rustls client stack the gateway uses for upstreams (TLS verified against
//! the configured CA bundle, or the system roots), bounded in time and size. The same
//! verified client serves every endpoint the gateway calls on its own (introspection, the
//! risk webhook).

use crate::certs::read_certs;
use crate::config::defaults::{JWKS_FETCH_TIMEOUT, JWKS_MAX_BYTES};
use crate::config::{ConfigError, IssuerConfig};
use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// HTTPS client for the endpoints the gateway calls on its own (an issuer's JWKS and
/// introspection, the risk webhook).
pub(crate) type OutboundClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Where an issuer's keys come from.
#[derive(Clone)]
pub(super) enum JwksOrigin {
    /// A local file, read again on each fetch.
    File(PathBuf),
    /// An HTTPS URL.
    Https {
        /// The JWKS URL.
        uri: Uri,
        /// Client verifying the server against the configured roots.
        client: Box<OutboundClient>,
    },
}

impl JwksOrigin {
    /// The origin an issuer configures; `None` for shared-secret-only issuers.
    pub(super) fn from_config(issuer: &IssuerConfig) -> Result<Option<Self>, ConfigError> {
        if let Some(file) = &issuer.jwks_file {
            return Ok(Some(Self::File(file.clone())));
        }
        let Some(url) = &issuer.jwks_url else {
            return Ok(None);
        };
        let uri: Uri = url.parse().map_err(|_| {
            ConfigError::one(
                "privgate.toml",
                format!("issuer `{}`: bad jwks_url", issuer.issuer),
            )
        })?;
        let client = issuer_client(issuer)?;
        Ok(Some(Self::Https { uri, client }))
    }

    /// Reads the document once. Errors are for logs (they name no key material).
    pub(super) async fn fetch(&self) -> Result<Bytes, String> {
        match self {
            Self::File(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                if bytes.len() > JWKS_MAX_BYTES {
                    return Err("JWKS file over the size limit".into());
                }
                Ok(Bytes::from(bytes))
            }
            Self::Https { uri, client } => {
                tokio::time::timeout(JWKS_FETCH_TIMEOUT, fetch_https(client, uri))
                    .await
                    .map_err(|_| "JWKS fetch timed out".to_owned())?
            }
        }
    }
}

/// A client that verifies the issuer's servers against its `ca` bundle, or the system
/// roots; connect timeout as for JWKS fetches.
pub(crate) fn issuer_client(issuer: &IssuerConfig) -> Result<Box<OutboundClient>, ConfigError> {
    outbound_client(issuer.ca.as_deref(), JWKS_FETCH_TIMEOUT)
}

/// A client that verifies servers against the `ca` bundle, or the system roots; HTTPS
/// only, HTTP/1.1, connections given `connect_timeout`.
pub(crate) fn outbound_client(
    ca: Option<&Path>,
    connect_timeout: Duration,
) -> Result<Box<OutboundClient>, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(ca) => {
            for cert in read_certs(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| ConfigError::one(ca, format!("not a CA certificate: {e}")))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ConfigError::one("privgate.toml", e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    Ok(Box::new(
        Client::builder(TokioExecutor::new()).build(connector),
    ))
}

async fn fetch_https(client: &OutboundClient, uri: &Uri) -> Result<Bytes, String> {
    let request = Request::get(uri.clone())
        .header(http::header::ACCEPT, "application/json")
        .body(Full::default())
        .map_err(|e| e.to_string())?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("JWKS request failed: {}", error_chain(&e)))?;
    if response.status() != StatusCode::OK {
        return Err(format!("JWKS server answered {}", response.status()));
    }
    Limited::new(response.into_body(), JWKS_MAX_BYTES)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| format!("reading the JWKS failed: {e}"))
}

pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
