//! TLS on the client side: versions, ALPN, mutual TLS, handshake-failure metrics.

use crate::harness::*;
use http::StatusCode;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn handshake(gw: &Gateway, config: rustls::ClientConfig) -> Result<(), std::io::Error> {
    let tcp = tokio::net::TcpStream::connect(gw.addr).await?;
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    // TLS 1.3 client authentication failures surface on the first read after the handshake.
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    if !response.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other(format!(
            "unexpected response: {:?}",
            String::from_utf8_lossy(&response)
        )));
    }
    Ok(())
}

#[tokio::test]
async fn tls12_and_tls13_accepted_with_alpn_and_ecdsa() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let gw = Gateway::start(&ws.write("privgate.toml", &config(&ws, up.addr, "", "")));
    for (version, expected) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let cfg = client_tls_versions(&ws, None, &[b"h2", b"http/1.1"], &[version]);
        let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let conn = stream.get_ref().1;
        assert_eq!(conn.protocol_version(), Some(expected));
        assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]), "h2 preferred");
        let suite = format!("{:?}", conn.negotiated_cipher_suite().unwrap().suite());
        if expected == rustls::ProtocolVersion::TLSv1_2 {
            assert!(
                suite.contains("ECDHE_ECDSA"),
                "ECDSA certificate in use: {suite}"
            );
        }
    }
}

/// A TLS 1.1 ClientHello (legacy_version 0x0302, no supported_versions extension), written
/// byte by byte since no maintained Rust TLS client can still speak TLS 1.1. It offers
/// suites, a group and a signature scheme the gateway supports, so the version is the only
/// reason left to refuse it.
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x2f]); // ECDHE-{ECDSA,RSA}-AES128-GCM-SHA256
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let extensions: &[u8] = &[
        0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x17, // supported_groups: secp256r1
        0x00, 0x0b, 0x00, 0x02, 0x01, 0x00, // ec_point_formats: uncompressed
        0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04,
        0x03, // signature_algorithms: ecdsa_secp256r1_sha256
    ];
    body.extend_from_slice(&[0x00, extensions.len() as u8]);
    body.extend_from_slice(extensions);
    let mut handshake = vec![0x01, 0x00, 0x00, body.len() as u8];
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend(handshake);
    record
}

#[tokio::test]
async fn tls11_is_refused_with_a_protocol_version_alert() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let gw = Gateway::start(&ws.write("privgate.toml", &config(&ws, up.addr, "", "")));
    let mut tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    tcp.write_all(&tls11_client_hello()).await.unwrap();
    let (reply, closed) = read_until_closed(&mut tcp, std::time::Duration::from_secs(5)).await;
    assert!(closed, "server kept the connection open");
    // An alert record: content type 21, level fatal (2), description protocol_version (70).
    assert_eq!(reply.first(), Some(&0x15), "{reply:?}");
    assert_eq!(&reply[5..7], &[0x02, 70], "{reply:?}");
    assert_handshake_failures(&gw, 1).await;
}

/// Asserts the listener's handshake-failure count. The server counts a failure after it has
/// closed the connection, so on a loaded machine the client can ask first: wait up to 5 s
/// for the count (a wrong or missing one still fails). The whole line must match: a
/// substring check would take a count of 10 for 1.
async fn assert_handshake_failures(gw: &Gateway, count: usize) {
    let expected = format!(r#"privgate_tls_handshake_failures_total{{listener="public"}} {count}"#);
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = gw.admin_get("/metrics").await.1;
        if metrics.lines().any(|l| l == expected) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(metrics.lines().any(|l| l == expected), "{metrics}");
}

/// A gateway whose listener asks for client certificates (`"optional"` or `"required"`).
async fn mtls_gateway(mode: &str) -> (Workspace, Upstream, Gateway) {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let dir = ws.dir.path().display();
    let listener = format!("client_ca = \"{dir}/certs/ca.pem\"\nclient_auth = \"{mode}\"");
    let gw = Gateway::start(&ws.write("privgate.toml", &config(&ws, up.addr, &listener, "")));
    (ws, up, gw)
}

#[tokio::test]
async fn mutual_tls_accepts_only_certificates_from_the_client_ca() {
    // (client_auth, client certificate presented, served)
    let cases = [
        ("required", Some("certs/client-a"), true),
        ("required", None, false),
        ("required", Some("other/client-a"), false),
        ("optional", None, true),
        ("optional", Some("certs/client-a"), true),
        ("optional", Some("other/client-a"), false),
    ];
    for mode in ["required", "optional"] {
        let (ws, _up, gw) = mtls_gateway(mode).await;
        let mut refused = 0;
        for (_, cert, served) in cases.iter().filter(|c| c.0 == mode) {
            let result = handshake(&gw, client_tls(&ws, *cert, &[b"http/1.1"])).await;
            assert_eq!(result.is_ok(), *served, "{mode} with {cert:?}: {result:?}");
            refused += usize::from(!served);
        }
        // Over HTTP/2 too, through a pooled client.
        let client = https_client(&ws, Some("certs/client-b"), true);
        assert_eq!(get(&client, &gw.url("/echo")).await.status, StatusCode::OK);
        // The verified certificate reaches the request path (logged as present).
        gw.wait_for(|l| {
            l["message"] == "request" && l["client_cert"] == true && l["version"] == "HTTP/2.0"
        });
        assert_handshake_failures(&gw, refused).await;
    }
}

/// One `GET /echo` on a new connection with `config` (whose session store carries sessions
/// from one connection to the next); returns how the handshake went.
async fn handshake_kind(gw: &Gateway, config: &Arc<rustls::ClientConfig>) -> rustls::HandshakeKind {
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(config.clone())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let kind = stream.get_ref().1.handshake_kind().unwrap();
    // Reading to the end also takes in the TLS 1.3 tickets sent after the handshake.
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    assert!(response.starts_with(b"HTTP/1.1 200"), "{response:?}");
    kind
}

#[tokio::test]
async fn returning_clients_resume_and_keep_their_client_certificate() {
    let (ws, _up, gw) = mtls_gateway("required").await;
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let cfg = client_tls_versions(&ws, Some("certs/client-a"), &[b"http/1.1"], &[version]);
        let cfg = Arc::new(cfg);
        let mut kinds = Vec::new();
        for _ in 0..3 {
            kinds.push(handshake_kind(&gw, &cfg).await);
        }
        use rustls::HandshakeKind::{Full, Resumed};
        assert_eq!(kinds, [Full, Resumed, Resumed], "{version:?}");
    }
    // Resumed connections still carry the certificate the full handshake verified.
    let with_cert = || {
        let logs = gw.logs.lock().unwrap();
        let requests = logs.iter().filter(|l| l["message"] == "request");
        requests.filter(|l| l["client_cert"] == true).count()
    };
    for _ in 0..100 {
        if with_cert() == 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(with_cert(), 6);
}

/// Signature verification limited to ECDSA P-256: a client that cannot verify anything else.
static P256_ONLY: rustls::crypto::WebPkiSupportedAlgorithms =
    rustls::crypto::WebPkiSupportedAlgorithms {
        all: &[webpki::ring::ECDSA_P256_SHA256],
        mapping: &[(
            rustls::SignatureScheme::ECDSA_NISTP256_SHA256,
            &[webpki::ring::ECDSA_P256_SHA256],
        )],
    };

/// Writes a CA (`alt/ca.pem`) and two localhost server certificates it signs: Ed25519
/// (`alt/ed25519`) and ECDSA P-256 (`alt/p256`).
fn two_key_types(ws: &Workspace) {
    std::fs::create_dir_all(ws.path("alt")).unwrap();
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    ws.write("alt/ca.pem", &ca.pem());
    for (name, alg) in [
        ("ed25519", &rcgen::PKCS_ED25519),
        ("p256", &rcgen::PKCS_ECDSA_P256_SHA256),
    ] {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        ws.write(&format!("alt/{name}.pem"), &cert.pem());
        ws.write(&format!("alt/{name}.key.pem"), &key.serialize_pem());
    }
}

#[tokio::test]
async fn primary_certificate_is_preferred_and_fallback_serves_only_clients_that_need_it() {
    let ws = Workspace::new();
    two_key_types(&ws);
    let up = Upstream::start().await;
    let dir = ws.dir.path().display();
    let cfg = config(&ws, up.addr, "", "")
        .replace(&format!("{dir}/certs/server.pem"), &format!("{dir}/alt/ed25519.pem"))
        .replace(&format!("{dir}/certs/server.key.pem"), &format!("{dir}/alt/ed25519.key.pem"))
        .replace(
            "[admin]",
            &format!("fallback_cert = \"{dir}/alt/p256.pem\"\nfallback_key = \"{dir}/alt/p256.key.pem\"\n\n[admin]"),
        );
    let gw = Gateway::start(&ws.write("privgate.toml", &cfg));

    let served_leaf = |config: rustls::ClientConfig| async {
        let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        stream.get_ref().1.peer_certificates().unwrap()[0]
            .clone()
            .into_owned()
    };
    let leaf_of = |file: &str| {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_file(ws.path(file)).unwrap()
    };

    let client = |algorithms: Option<rustls::crypto::WebPkiSupportedAlgorithms>| {
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(algorithms) = algorithms {
            provider.signature_verification_algorithms = algorithms;
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.add(leaf_of("alt/ca.pem")).unwrap();
        rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth()
    };
    // A client that can verify the primary gets it; one that only verifies ECDSA P-256
    // gets the fallback.
    assert_eq!(served_leaf(client(None)).await, leaf_of("alt/ed25519.pem"));
    assert_eq!(
        served_leaf(client(Some(P256_ONLY))).await,
        leaf_of("alt/p256.pem")
    );
}

/// A client config offering only `suites`, in that order of preference.
fn client_preferring(
    ws: &Workspace,
    version: &'static rustls::SupportedProtocolVersion,
    suites: &[rustls::SupportedCipherSuite],
) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ws.path("certs/ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = suites.to_vec();
    rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[tokio::test]
async fn the_server_chooses_the_cipher_suite_whatever_the_client_prefers() {
    use rustls::crypto::ring::cipher_suite::*;
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let gw = Gateway::start(&ws.write("privgate.toml", &config(&ws, up.addr, "", "")));
    // (version, the client's order of preference, the suite the server must pick)
    let cases = [
        (
            &rustls::version::TLS13,
            vec![
                TLS13_CHACHA20_POLY1305_SHA256,
                TLS13_AES_128_GCM_SHA256,
                TLS13_AES_256_GCM_SHA384,
            ],
            TLS13_AES_256_GCM_SHA384,
        ),
        (
            &rustls::version::TLS13,
            vec![TLS13_CHACHA20_POLY1305_SHA256, TLS13_AES_128_GCM_SHA256],
            TLS13_AES_128_GCM_SHA256,
        ),
        (
            &rustls::version::TLS12,
            vec![
                TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            ],
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            &rustls::version::TLS12,
            vec![
                TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            ],
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
    ];
    for (version, offered, expected) in cases {
        let cfg = client_preferring(&ws, version, &offered);
        let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let negotiated = stream.get_ref().1.negotiated_cipher_suite().unwrap();
        assert_eq!(
            negotiated.suite(),
            expected.suite(),
            "client offered {:?}",
            offered.iter().map(|s| s.suite()).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn hsts_is_sent_on_every_response_of_the_listeners_that_ask_for_it() {
    let ws = Workspace::new();
    let up = Upstream::start().await;
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let extra = format!(
        r#"
[upstream.gone]
url = "http://{dead_addr}"

[[route]]
name = "gone"
path_prefix = "/gone"
upstream = "gone"
"#
    );
    let hsts = r#"hsts = { max_age = "365d", include_subdomains = true }"#;
    let gw = Gateway::start(&ws.write("privgate.toml", &config(&ws, up.addr, hsts, &extra)));
    let client = https_client(&ws, None, false);
    let h2 = https_client(&ws, None, true);
    // Forwarded, refused by the gateway (upstream unreachable), and over HTTP/2.
    for (client, path, status) in [
        (&client, "/echo", StatusCode::OK),
        (&client, "/gone/x", StatusCode::BAD_GATEWAY),
        (&h2, "/echo", StatusCode::OK),
    ] {
        let reply = get(client, &gw.url(path)).await;
        assert_eq!(reply.status, status, "{path}");
        assert_eq!(
            reply.headers["strict-transport-security"], "max-age=31536000; includeSubDomains",
            "{path}"
        );
    }

    // Off unless asked for.
    let ws = Workspace::new();
    let gw = Gateway::start(&ws.write("privgate.toml", &config(&ws, up.addr, "", "")));
    let reply = get(&https_client(&ws, None, false), &gw.url("/echo")).await;
    assert!(!reply.headers.contains_key("strict-transport-security"));
}
