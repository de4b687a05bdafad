//! Registered clients: services that call with a verified mutual-TLS certificate whose
//! SHA-256 thumbprint is pinned in `[[client]]` (exact pinning: no certificate field is
//! parsed or trusted beyond the chain check).

use crate::certs::PeerCertificate;
use crate::config::ClientConfig;
use crate::policy::{Caller, CallerKind, Credential};
use std::collections::HashMap;
use std::sync::Arc;

/// Registered clients by certificate thumbprint.
#[derive(Debug, Default)]
pub(crate) struct ClientRegistry {
    by_thumbprint: HashMap<[u8; 32], Arc<Caller>>,
}

impl ClientRegistry {
    /// Builds the registry from (validated) configuration.
    pub(crate) fn new(clients: &[ClientConfig]) -> Self {
        let by_thumbprint = clients
            .iter()
            .filter_map(|c| {
                let thumbprint = decode_thumbprint(&c.certificate_sha256)?;
                let caller = Caller {
                    kind: CallerKind::Service,
                    credential: Credential::ClientCertificate,
                    id: c.id.clone(),
                    roles: c.roles.clone(),
                    organisation: c.organisation.clone(),
                    purposes: c.purposes.clone(),
                };
                Some((thumbprint, Arc::new(caller)))
            })
            .collect();
        Self { by_thumbprint }
    }

    /// The registered caller behind a verified client certificate, if any.
    pub(crate) fn identify(&self, certificate: Option<&PeerCertificate>) -> Option<&Arc<Caller>> {
        self.by_thumbprint.get(&certificate?.thumbprint_sha256)
    }
}

fn decode_thumbprint(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateDer;

    #[test]
    fn only_the_pinned_certificate_identifies_a_client() {
        let cert = PeerCertificate::new(CertificateDer::from(b"certificate one".to_vec()));
        let other = PeerCertificate::new(CertificateDer::from(b"certificate two".to_vec()));
        let registry = ClientRegistry::new(&[ClientConfig {
            id: "fintech-app".into(),
            certificate_sha256: crate::audit::hex(&cert.thumbprint_sha256).to_uppercase(),
            roles: vec!["partner".into()],
            organisation: Some("fintech".into()),
            purposes: vec!["account_information".into()],
        }]);
        let caller = registry.identify(Some(&cert)).unwrap();
        assert_eq!(
            (caller.principal().as_str(), &*caller.grantee()),
            ("Service:client:fintech-app", "fintech")
        );
        assert!(registry.identify(Some(&other)).is_none());
        assert!(registry.identify(None).is_none());
    }
}
