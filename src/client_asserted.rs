//! Which request headers are a client's to send: the classification the gateway's header
//! hygiene (`gateway::headers`) strips by and `forwarding.pass_client_headers` is checked
//! against when the configuration is loaded.
//!
//! A leaf: it depends on nothing in the crate, so configuration and the proxy can both use
//! it without either depending on the other.

/// Request headers an upstream may take as the word of a proxy in front of it, never the
/// client's: identity set by an authenticating proxy, the client certificate a TLS
/// terminator saw, the client's address, the original URL, host or method (URL-rewrite and
/// method-override headers route a request around a path or method the gateway decided).
/// The gateway sets `Forwarded` and `X-Forwarded-For`/`-Proto`/`-Host` itself afterwards.
pub(crate) const CLIENT_ASSERTED: &[&str] = &[
    // addresses and the original request (RFC 7239 and the de facto headers)
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "fly-client-ip",
    "akamai-client-ip",
    "fastly-client-ip",
    "x-originating-ip",
    "x-proxyuser-ip",
    "proxy-client-ip",
    "wl-proxy-client-ip",
    "x-custom-ip-authorization",
    "x-forwarded",
    "x-host",
    "x-url-scheme",
    "x-scheme",
    "x-script-name",
    "front-end-https",
    // URL rewrite and method override
    "x-rewrite-url",
    "x-originating-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    // client certificates (RFC 9440 and the de facto headers)
    "client-cert",
    "client-cert-chain",
    "ssl-client-cert",
    // identity asserted by an authenticating proxy (families under
    // [`CLIENT_ASSERTED_PREFIXES`])
    "x-user",
    "x-username",
    "x-userid",
    "x-webauth-user",
    "x-authenticated-user",
    "x-authenticated-userid",
    "x-principal",
    "x-credential-identifier",
    "x-credential-username",
    "x-anonymous-consumer",
    "x-anonymous-groups",
    "x-userinfo",
    "x-id-token",
    "x-access-token",
    "x-api-key",
    // `Authorization` under the name CGI servers that drop the real one are configured to
    // read (`HTTP_X_AUTHORIZATION`)
    "x-authorization",
];

/// Prefixes of client-asserted header families (see [`CLIENT_ASSERTED`]). A family is
/// named by its prefix, not by the members seen so far: a proxy that sets `X-User-Id` also
/// sets `X-User-Roles`, Authelia's `Remote-User` comes with `Remote-Groups`, Kubernetes'
/// `X-Remote-User` with `X-Remote-Group` and `X-Remote-Extra-*`.
pub(crate) const CLIENT_ASSERTED_PREFIXES: &[&str] = &[
    "cf-connecting-",    // Cloudflare: CF-Connecting-IP, CF-Connecting-IPv6
    "cf-access-",        // Cloudflare Access: CF-Access-Authenticated-User-Email, -Jwt-Assertion
    "x-azure-",          // Azure Front Door: X-Azure-ClientIP, X-Azure-SocketIP
    "x-arr-",            // IIS ARR: X-ARR-ClientCert, X-ARR-SSL
    "x-amzn-mtls-",      // AWS ALB mutual TLS: X-Amzn-Mtls-Clientcert(-Subject/-Leaf...)
    "x-remote-",         // X-Remote-User/-Group/-Extra-* (Kubernetes), X-Remote-IP/-Addr
    "remote-",           // Remote-User/-Groups/-Email/-Name (Authelia, Authentik)
    "impersonate-",      // Impersonate-User/-Group/-Uid (Kubernetes)
    "x-user-",           // X-User-Id/-Email/-Name/-Roles/-Groups
    "x-consumer-",       // Kong: X-Consumer-Id/-Username/-Custom-Id/-Groups
    "x-auth-",           // X-Auth-User/-Email/-Roles/-Groups, oauth2-proxy's X-Auth-Request-*
    "x-jwt-",            // X-Jwt-Assertion, X-Jwt-Payload, X-Jwt-Claim-* (Envoy, Istio)
    "x-pomerium-",       // Pomerium: X-Pomerium-Jwt-Assertion, X-Pomerium-Claim-*
    "x-vouch-",          // Vouch Proxy: X-Vouch-User, X-Vouch-Idp-Claims-*
    "x-endpoint-api-",   // Google Cloud Endpoints: X-Endpoint-API-UserInfo
    "x-apigateway-api-", // Google API Gateway: X-Apigateway-Api-Userinfo
    "x-appengine-",      // App Engine: X-AppEngine-User-Email/-Id, -Country
    "x-forwarded-", // X-Forwarded-For/-Host/-Proto/-Port/-Prefix/-Uri/-User/-Email/-Client-Cert...
    "x-original-",  // X-Original-URL/-URI/-Host/-Method/-Forwarded-For
    "x-ssl-",       // X-SSL-Client-Cert/-Verify/-DN/-Serial/-Fingerprint...
    "x-client-cert", // X-Client-Cert, X-Client-Certificate, X-Client-Cert-Chain
    "x-client-verify", // X-Client-Verify(-Result)
    "x-client-dn",  // X-Client-DN
    "ssl-client-",  // SSL-Client-Verify/-DN/-Cert
    "x-tls-client-", // X-TLS-Client-Cert/-Verify
    "x-amzn-oidc-", // AWS ALB
    "x-goog-authenticated-user-",
    "x-goog-iap-",
    "x-ms-client-principal", // Azure App Service
    "x-ms-token-",
    "x-envoy-", // Envoy's trusted-edge headers (original path, external address)
];

/// Whether a (lower-case) header name is a client-asserted one, in either spelling
/// (`X_Real_IP` as `X-Real-IP`: see [`dashed`]).
pub(crate) fn is_client_asserted(name: &str) -> bool {
    let name = dashed(name);
    let name = &*name;
    EXACT.contains(name)
        || CLIENT_ASSERTED_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

/// [`CLIENT_ASSERTED`] as a set: every header of every request is looked up in it (one hash
/// instead of comparing with fifty names).
static EXACT: std::sync::LazyLock<foldhash::HashSet<&'static str>> =
    std::sync::LazyLock::new(|| CLIENT_ASSERTED.iter().copied().collect());

/// A header name as CGI-style servers read it: `_` and `-` are the same there
/// (`X_Remote_User` and `X-Remote-User` both become `HTTP_X_REMOTE_USER`), so a header is
/// matched against the gateway's lists in this form.
pub(crate) fn dashed(name: &str) -> std::borrow::Cow<'_, str> {
    // Every header of every request goes through here: no copy when there is no `_`.
    match name.as_bytes().contains(&b'_') {
        true => name.replace('_', "-").into(),
        false => name.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every listed name and every family member is matched, in both spellings; names that
    /// only share a part with a listed one are not.
    #[test]
    fn every_listed_name_and_family_member_is_matched() {
        for name in CLIENT_ASSERTED {
            assert!(is_client_asserted(name), "{name}");
            assert!(is_client_asserted(&name.replace('-', "_")), "{name}");
        }
        for prefix in CLIENT_ASSERTED_PREFIXES {
            let member = format!("{prefix}extra");
            assert!(is_client_asserted(&member), "{member}");
            assert!(is_client_asserted(&member.replace('-', "_")), "{member}");
        }
        for name in [
            "x-real-i",
            "real-ip",
            "xforwarded",
            "x-use",
            "accept",
            "x-request-id",
        ] {
            assert!(!is_client_asserted(name), "{name}");
        }
    }
}
