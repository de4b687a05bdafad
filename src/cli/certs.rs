//! `privgate certs dev`: development certificates (rcgen), never for production.
//!
//! Writes a CA, a server certificate for localhost, 127.0.0.1 and ::1, and two client
//! certificates (`client-a`, `client-b`), all ECDSA P-256. Private keys are written with
//! mode 0600 and existing files are never overwritten without `--force`.

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// Arguments of `privgate certs`.
#[derive(clap::Args)]
pub(super) struct Args {
    #[command(subcommand)]
    kind: Kind,
}

#[derive(clap::Subcommand)]
enum Kind {
    /// A development CA, a localhost server certificate and two client certificates.
    Dev {
        /// Output directory (created if missing).
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Print the SHA-256 thumbprint (hex) of a PEM certificate, as `[[client]]` pins it.
    Thumbprint {
        /// PEM certificate file (the first certificate is used).
        cert: PathBuf,
    },
}

pub(super) fn run(args: &Args) -> anyhow::Result<()> {
    match &args.kind {
        Kind::Dev { out, force } => {
            write_dev_certs(out, *force)?;
            println!("development certificates written to {}", out.display());
            Ok(())
        }
        Kind::Thumbprint { cert } => {
            let chain = crate::certs::read_certs(cert)?;
            let leaf = crate::certs::PeerCertificate::new(chain[0].clone());
            println!("{}", crate::audit::hex(&leaf.thumbprint_sha256));
            Ok(())
        }
    }
}

/// Names of the client certificates `write_dev_certs` creates.
pub(super) const DEV_CLIENTS: [&str; 2] = ["client-a", "client-b"];

/// Writes the development CA, server and client certificates into `out`.
pub(super) fn write_dev_certs(out: &Path, force: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;

    let ca_key = KeyPair::generate_for(alg)?;
    let mut ca = params(Vec::new(), "privgate development CA")?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    write(out, "ca.pem", &ca_cert.pem(), false, force)?;
    write(out, "ca.key.pem", &ca_key.serialize_pem(), true, force)?;

    let server_key = KeyPair::generate_for(alg)?;
    let mut server = params(
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
        "localhost",
    )?;
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key)?;
    write(out, "server.pem", &server_cert.pem(), false, force)?;
    write(
        out,
        "server.key.pem",
        &server_key.serialize_pem(),
        true,
        force,
    )?;

    for name in DEV_CLIENTS {
        let key = KeyPair::generate_for(alg)?;
        let mut client = params(Vec::new(), name)?;
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = client.signed_by(&key, &ca_cert, &ca_key)?;
        write(out, &format!("{name}.pem"), &cert.pem(), false, force)?;
        write(
            out,
            &format!("{name}.key.pem"),
            &key.serialize_pem(),
            true,
            force,
        )?;
    }
    Ok(())
}

fn params(names: Vec<String>, common_name: &str) -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(names)?;
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.distinguished_name
        .push(DnType::OrganizationName, "privgate development");
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(365);
    Ok(p)
}

fn write(dir: &Path, name: &str, pem: &str, private: bool, force: bool) -> anyhow::Result<()> {
    use crate::private_file::Existing;
    let path = dir.join(name);
    let existing = if force {
        Existing::Replace
    } else {
        Existing::Refuse
    };
    let opened = if private {
        crate::private_file::create(&path, existing)
    } else {
        let mut options = std::fs::OpenOptions::new();
        options.write(true);
        match existing {
            Existing::Replace => options.create(true).truncate(true),
            Existing::Refuse => options.create_new(true),
        };
        options.open(&path)
    };
    let mut file = opened.with_context(|| {
        format!(
            "{}: cannot write (use --force to replace existing files)",
            path.display()
        )
    })?;
    file.write_all(pem.as_bytes())
        .with_context(|| format!("{}: write failed", path.display()))?;
    Ok(())
}
