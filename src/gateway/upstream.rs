//! Named upstream services: pooled hyper-util clients, with their own TLS settings and
//! timeouts. Connections are kept alive and reused; the pools are rebuilt on reload.
//!
//! One pool per connection lane (`lanes`): a pooled connection is driven by a task on the
//! lane that opened it, so a request that took a connection from another lane's pool would
//! hand each exchange to that lane's thread and back.

use super::error::GatewayError;
use super::proxy_body::ProxyBody;
use super::{body, lanes, tls};
use crate::config::{ConfigError, UpstreamConfig};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// A reachable upstream service.
#[derive(Clone)]
pub(crate) struct Upstream {
    /// Name from config (logs and metrics).
    pub(crate) name: String,
    scheme: Scheme,
    authority: Authority,
    base_path: String,
    response_timeout: Duration,
    /// One client (and pool) per lane, indexed by [`lanes::current`].
    clients: Box<[Client<HttpsConnector<HttpConnector>, ProxyBody>]>,
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
        let clients = (0..lanes::count())
            .map(|_| {
                Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(config.pool_idle_timeout)
                    .pool_max_idle_per_host(config.pool_max_idle)
                    .pool_timer(TokioTimer::new())
                    .build(connector.clone())
            })
            .collect();
        Ok(Self {
            name: name.to_owned(),
            scheme,
            authority,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            response_timeout: config.response_timeout,
            clients,
        })
    }

    /// The upstream URI for a request path (already stripped of the route prefix if asked).
    pub(crate) fn target(&self, path: &str, query: Option<&str>) -> Result<Uri, GatewayError> {
        let joined = match query {
            Some(q) => format!("{}{}?{}", self.base_path, path, q),
            None => format!("{}{}", self.base_path, path),
        };
        let path_and_query =
            PathAndQuery::try_from(joined).map_err(|_| GatewayError::AmbiguousPath)?;
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| GatewayError::AmbiguousPath)
    }

    /// Sends a request and waits for the response head within the response timeout.
    pub(crate) async fn send(
        &self,
        mut req: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, GatewayError> {
        // Upstreams speak HTTP/1.1 whatever the client used.
        *req.version_mut() = Version::HTTP_11;
        let client = &self.clients[lanes::current() % self.clients.len()];
        match tokio::time::timeout(self.response_timeout, client.request(req)).await {
            Err(_) => Err(GatewayError::UpstreamTimeout {
                upstream: self.name.clone(),
            }),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) if body::is_length_limit(&e) => Err(GatewayError::BodyTooLarge),
            Ok(Err(e)) if e.is_connect() => Err(GatewayError::UpstreamUnreachable {
                upstream: self.name.clone(),
                cause: e.into(),
            }),
            Ok(Err(e)) => Err(GatewayError::UpstreamFailed {
                upstream: self.name.clone(),
                cause: e.into(),
            }),
        }
    }
}
