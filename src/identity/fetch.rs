//! Reading an issuer's JWKS document: from a local file, or over HTTPS with the gateway's
//! outbound client (`crate::outbound`: TLS verified against the issuer's CA bundle or the
//! system roots, bounded in time and size, retried with backoff, proxies honoured). The
//! same issuer client serves introspection and the console's token endpoint.

use crate::config::defaults::{JWKS_FETCH_TIMEOUT, JWKS_MAX_BYTES};
use crate::config::{ConfigError, IssuerConfig};
use crate::outbound::OutboundClient;
use bytes::Bytes;
use http::{StatusCode, Uri};
use std::path::PathBuf;

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
                let answer = client
                    .get(uri, "application/json")
                    .await
                    .map_err(|e| format!("JWKS fetch failed: {e}"))?;
                if answer.status() != StatusCode::OK {
                    return Err(format!("JWKS server answered {}", answer.status()));
                }
                Ok(answer.into_body())
            }
        }
    }
}

/// The client for an issuer's endpoints (JWKS, introspection, token): servers verified
/// against its `ca` bundle or the system roots; each try bounded by the JWKS timeout and
/// answers by the JWKS size limit.
pub(crate) fn issuer_client(issuer: &IssuerConfig) -> Result<Box<OutboundClient>, ConfigError> {
    Ok(Box::new(
        OutboundClient::builder()
            .ca(issuer.ca.clone())
            .connect_timeout(JWKS_FETCH_TIMEOUT)
            .timeout(JWKS_FETCH_TIMEOUT)
            .max_body(JWKS_MAX_BYTES)
            .build()?,
    ))
}
