//! Named upstream services: pooled HTTP/1.1 connections (`pool`), with their own TLS
//! settings and timeouts. Connections are kept alive and reused; the pools are rebuilt on
//! reload.
//!
//! One pool per connection lane (`lanes`): a pooled connection is driven by a task on the
//! lane that opened it, so a request that took a connection from another lane's pool would
//! hand each exchange to that lane's thread and back.

mod pool;

pub(crate) use pool::UpstreamBody;

use super::error::GatewayError;
use super::proxy_body::ProxyBody;
use super::{body, tls};
use crate::config::{ConfigError, UpstreamConfig};
use futures_util::FutureExt;
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use pool::{Pool, SendError};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A reachable upstream service.
#[derive(Clone)]
pub(crate) struct Upstream {
    /// Name from config (logs and metrics).
    pub(crate) name: String,
    base_path: String,
    response_timeout: Duration,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Builds the client for an (already validated) upstream; loads its TLS files.
    pub(crate) fn build(name: &str, config: &UpstreamConfig) -> Result<Self, ConfigError> {
        let bad_url = || ConfigError::one("privgate.toml", format!("upstream `{name}`: bad url"));
        let uri: Uri = config.url.parse().map_err(|_| bad_url())?;
        let scheme = uri.scheme().cloned().ok_or_else(bad_url)?;
        let authority = uri.authority().cloned().ok_or_else(bad_url)?;
        let tls_config = if scheme == Scheme::HTTPS {
            tls::upstream_client_config(name, config)?
        } else {
            tls::trusts_no_server()
        };
        let connector = tls::http_or_https_connector(tls_config, config.connect_timeout);
        // `Host` as clients write it: the port only where it is not the scheme's default.
        let default_port = if scheme == Scheme::HTTPS { 443 } else { 80 };
        let host = match authority.port_u16() {
            Some(port) if port != default_port => format!("{}:{port}", authority.host()),
            _ => authority.host().to_owned(),
        };
        let host = HeaderValue::from_str(&host).map_err(|_| bad_url())?;
        let origin = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query("/")
            .build()
            .map_err(|_| bad_url())?;
        Ok(Self {
            name: name.to_owned(),
            base_path: uri.path().trim_end_matches('/').to_owned(),
            response_timeout: config.response_timeout,
            pool: Arc::new(Pool::new(
                connector,
                origin,
                host,
                config.pool_idle_timeout,
                config.pool_max_idle,
                pool::RESEND_AFTER_IDLE,
            )),
        })
    }

    /// The target sent upstream for a request path (already stripped of the route prefix if
    /// asked), in origin form (`/path?query`): the connection already names the upstream.
    pub(crate) fn target(&self, path: &str, query: Option<&str>) -> Result<Uri, GatewayError> {
        // Pushed into one buffer of the right size: `format!` cost as much as the rest of
        // this call, once per request.
        let query_len = query.map_or(0, |q| q.len() + 1);
        let mut joined = String::with_capacity(self.base_path.len() + path.len() + query_len);
        joined.push_str(&self.base_path);
        joined.push_str(path);
        if let Some(q) = query {
            joined.push('?');
            joined.push_str(q);
        }
        let path_and_query =
            PathAndQuery::try_from(joined).map_err(|_| GatewayError::AmbiguousPath)?;
        Ok(Uri::from(path_and_query))
    }

    /// Sends a request and waits for the response head within the response timeout. A plain
    /// function whose future is the timed exchange itself, mapped: an `async fn` would hold
    /// the request twice (its argument and a local) and the exchange's future inside its own,
    /// and an `async` block awaiting the exchange it captured holds that twice (the captured
    /// value and the awaited one), each level a copy where it is awaited
    /// (docs/architecture.md).
    pub(crate) fn send(
        &self,
        mut req: Request<ProxyBody>,
    ) -> impl Future<Output = Result<Response<UpstreamBody>, GatewayError>> + '_ {
        // Upstreams speak HTTP/1.1 whatever the client used.
        *req.version_mut() = Version::HTTP_11;
        tokio::time::timeout(self.response_timeout, self.pool.send(req)).map(
            |outcome| match outcome {
                Err(_) => Err(GatewayError::UpstreamTimeout {
                    upstream: self.name.clone(),
                }),
                Ok(Ok(response)) => Ok(response),
                Ok(Err(SendError::Exchange(e))) if body::is_length_limit(&e) => {
                    Err(GatewayError::BodyTooLarge)
                }
                Ok(Err(SendError::Connect(cause))) => Err(GatewayError::UpstreamUnreachable {
                    upstream: self.name.clone(),
                    cause,
                }),
                Ok(Err(SendError::Exchange(e))) => Err(GatewayError::UpstreamFailed {
                    upstream: self.name.clone(),
                    cause: e.into(),
                }),
            },
        )
    }
}
