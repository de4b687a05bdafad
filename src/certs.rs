//! Certificates and keys as files and as peers: PEM reading for the gateway's listeners,
//! upstream connections and issuers' CAs, and the verified client certificate that identity
//! matches registered clients by.
//!
//! A leaf below TLS and identity, so that identity (which reads a client's certificate) does
//! not depend on the gateway (which terminates TLS).

use crate::config::ConfigError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

/// The verified client certificate of a mutual-TLS connection, for later phases (e.g.
/// certificate-bound tokens, RFC 8705, compare `thumbprint_sha256` with `cnf.x5t#S256`).
#[derive(Clone, Debug)]
pub(crate) struct PeerCertificate {
    /// SHA-256 over the DER certificate.
    pub thumbprint_sha256: [u8; 32],
}

impl PeerCertificate {
    /// The thumbprint of a verified leaf certificate.
    pub(crate) fn new(der: CertificateDer<'static>) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
        let mut thumbprint_sha256 = [0u8; 32];
        thumbprint_sha256.copy_from_slice(digest.as_ref());
        Self { thumbprint_sha256 }
    }
}

/// Reads a PEM certificate chain; an error names the file.
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes =
        std::fs::read(path).map_err(|e| ConfigError::one(path, format!("cannot read: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::one(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(ConfigError::one(path, "contains no PEM certificate"));
    }
    Ok(certs)
}

/// Reads a PEM private key (PKCS#8, SEC1 or PKCS#1); an error names the file but never
/// includes any of its content.
pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let bytes =
        std::fs::read(path).map_err(|e| ConfigError::one(path, format!("cannot read: {e}")))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|_| ConfigError::one(path, "contains no usable PEM private key"))
}

/// When the first certificate in a PEM file stops being valid (Unix seconds): the leaf of a
/// chain as the gateway serves or presents it.
pub(crate) fn not_after(path: &Path) -> Result<i64, String> {
    use x509_cert::der::Decode;
    let leaf = read_certs(path)
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{}: no certificate", path.display()))?;
    let cert = x509_cert::Certificate::from_der(&leaf)
        .map_err(|e| format!("{}: not an X.509 certificate: {e}", path.display()))?;
    let not_after = cert.tbs_certificate.validity.not_after.to_unix_duration();
    i64::try_from(not_after.as_secs()).map_err(|e| e.to_string())
}
