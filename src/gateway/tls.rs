//! TLS for both sides of the gateway, with rustls and the ring provider only.
//!
//! Listeners speak TLS 1.3 and 1.2 (nothing older), offer ALPN `h2` and `http/1.1`, and serve
//! the primary certificate (ECDSA P-256 by convention) to every client that can verify it,
//! falling back to an optional second chain (e.g. RSA) only for clients that cannot. Mutual
//! TLS is per listener. Upstream connections verify the upstream against a configured CA and
//! may present the gateway's own client certificate. Reading PEM files and the peer
//! certificate type are `crate::certs`, which identity and the CLI use too.

use crate::certs::{read_certs, read_key};
use crate::config::{ClientAuth, ConfigError, ListenerConfig, UpstreamConfig};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;

/// Protocol versions the gateway speaks, newest first. TLS 1.1 and older are refused.
const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// ALPN protocols offered to clients, preferred first.
const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_roots(path: &Path) -> Result<Arc<RootCertStore>, ConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| ConfigError::one(path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// Loads a certificate chain and its key and checks that they belong together.
fn certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, ConfigError> {
    let chain = read_certs(cert)?;
    let key_der = read_key(key)?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|_| {
            ConfigError::one(
                key,
                "private key type is not supported (use ECDSA P-256/P-384, Ed25519 or RSA)",
            )
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|_| {
        ConfigError::one(
            cert,
            format!("certificate does not match the key in {}", key.display()),
        )
    })?;
    Ok(Arc::new(certified))
}

/// Serves the primary chain to every client that offers a signature scheme it can use, the
/// fallback chain otherwise.
#[derive(Debug)]
struct PreferPrimary {
    primary: Arc<CertifiedKey>,
    fallback: Option<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for PreferPrimary {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let offered = hello.signature_schemes();
        if self.primary.key.choose_scheme(offered).is_some() {
            return Some(self.primary.clone());
        }
        // With no usable fallback the primary is offered anyway and the handshake fails in
        // rustls with a proper alert.
        Some(
            self.fallback
                .clone()
                .unwrap_or_else(|| self.primary.clone()),
        )
    }
}

/// Builds the rustls server configuration of a listener.
pub(crate) fn server_config(listener: &ListenerConfig) -> Result<Arc<ServerConfig>, ConfigError> {
    let primary = certified_key(&listener.cert, &listener.key)?;
    let fallback = match (&listener.fallback_cert, &listener.fallback_key) {
        (Some(cert), Some(key)) => Some(certified_key(cert, key)?),
        _ => None,
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| ConfigError::one(&listener.cert, format!("TLS setup failed: {e}")))?;
    let builder = match (&listener.client_ca, listener.client_auth) {
        (Some(ca), ClientAuth::Optional | ClientAuth::Required) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(read_roots(ca)?, provider());
            let verifier = if listener.client_auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| ConfigError::one(ca, format!("client CA bundle unusable: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(PreferPrimary { primary, fallback }));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    // The server's suite order (the provider's: AES-256-GCM, AES-128-GCM, ChaCha20-Poly1305;
    // ECDHE only) wins over the client's, so a client cannot steer a connection to the
    // suite it prefers among those offered.
    config.ignore_client_order = true;
    // Stateless resumption tickets spare returning clients a full handshake. One ticketer
    // per listener and configuration: keys stay in this process and a reload starts new
    // ones (SECURITY.md, "Session resumption"); rustls rotates them every 6 hours.
    config.ticketer = rustls::crypto::ring::Ticketer::new()
        .map_err(|e| ConfigError::one(&listener.cert, format!("TLS ticketer: {e}")))?;
    Ok(Arc::new(config))
}

/// Builds the rustls client configuration used towards an https upstream.
pub(crate) fn upstream_client_config(
    name: &str,
    upstream: &UpstreamConfig,
) -> Result<ClientConfig, ConfigError> {
    let ca = upstream.ca.as_deref().ok_or_else(|| {
        ConfigError::one(
            "privgate.toml",
            format!("upstream `{name}`: https needs `ca`"),
        )
    })?;
    let builder = verifying_with(ca)?;
    // ALPN is left to hyper-rustls, which offers exactly the protocols the pool speaks
    // (HTTP/1.1): one protocol upstream, kept pooled and tested.
    let client_cert = match (&upstream.client_cert, &upstream.client_key) {
        (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
        _ => None,
    };
    presenting(builder, client_cert)
}

/// A client configuration for a server outside the gateway's request path (the trace
/// collector): verified against the CAs in `ca`, no client certificate.
/// The client TLS configuration of the gateway's own outbound calls (`crate::outbound`):
/// the same versions and provider as upstreams, servers verified against the `ca` bundle
/// or, without one, the system roots; the client certificate (mutual TLS) when given.
pub(crate) fn outbound_client_config(
    ca: Option<&Path>,
    client_cert: Option<(&Path, &Path)>,
) -> Result<ClientConfig, ConfigError> {
    let roots = match ca {
        Some(ca) => read_roots(ca)?,
        None => {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            Arc::new(roots)
        }
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| ConfigError::one("privgate.toml", format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots);
    presenting(builder, client_cert)
}

/// Finishes a client configuration, presenting `client_cert` (certificate and key files)
/// when given.
fn presenting(
    builder: rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>,
    client_cert: Option<(&Path, &Path)>,
) -> Result<ClientConfig, ConfigError> {
    match client_cert {
        Some((cert, key)) => {
            let chain = read_certs(cert)?;
            let key_der = read_key(key)?;
            certified_key(cert, key)?; // same file checks, and the pair must match
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| ConfigError::one(cert, format!("client certificate unusable: {e}")))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

pub(crate) fn collector_client_config(ca: &Path) -> Result<ClientConfig, ConfigError> {
    Ok(verifying_with(ca)?.with_no_client_auth())
}

/// The client side's protocol versions and provider, verifying servers against `ca`.
fn verifying_with(
    ca: &Path,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>, ConfigError> {
    let roots = read_roots(ca)?;
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| ConfigError::one(ca, format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots))
}

/// A client configuration that trusts no server: for connectors typed for https and http
/// alike whose target is plain http, so it is never used.
pub(crate) fn trusts_no_server() -> ClientConfig {
    ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth()
}

/// A connector for http and https targets alike (https verified by `tls`), speaking
/// HTTP/1.1, with Nagle off and a connect timeout: the upstream pools' and the trace
/// exporter's.
pub(crate) fn http_or_https_connector(
    tls: ClientConfig,
    connect_timeout: std::time::Duration,
) -> hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}
