//! `privgate demo`: the sample core-banking upstream with the gateway in front of it, from a
//! fresh checkout with no other set-up. State lives in `./demo-data` (git-ignored): dev
//! certificates are made once and reused; the config is rewritten each run. Ctrl-C stops both.

use super::certs;
use crate::certs::PeerCertificate;
use crate::demo::upstream;
use crate::gateway::Server;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::net::TcpListener;

/// Arguments of `privgate demo`.
#[derive(clap::Args)]
pub(super) struct Args {
    /// Working directory for certificates and config.
    #[arg(long, default_value = "demo-data")]
    dir: PathBuf,
    /// Gateway HTTPS port (loopback).
    #[arg(long, default_value_t = 8443)]
    port: u16,
    /// Admin port (loopback).
    #[arg(long, default_value_t = 9090)]
    admin_port: u16,
    /// Sample upstream port (loopback).
    #[arg(long, default_value_t = 9080)]
    upstream_port: u16,
    /// The demo identity provider's sign-in port (loopback, HTTPS), for the web console.
    #[arg(long, default_value_t = 8444)]
    idp_port: u16,
    /// Serve only the sample upstream (used by the load benchmark).
    #[arg(long)]
    upstream_only: bool,
    /// Leave out the encrypted sums (FHE): their key set takes about a minute to make on
    /// a first run (the Python client's tests start the demo this way).
    #[arg(long)]
    no_fhe: bool,
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let upstream_address = SocketAddr::from(([127, 0, 0, 1], args.upstream_port));
    let upstream_listener = TcpListener::bind(upstream_address)
        .await
        .with_context(|| format!("sample upstream: cannot bind {upstream_address}"))?;
    let upstream_task = tokio::spawn(upstream::serve(upstream_listener));
    if args.upstream_only {
        println!("sample core-banking upstream on http://{upstream_address} (Ctrl-C stops)");
        tokio::signal::ctrl_c().await?;
        upstream_task.abort();
        return Ok(());
    }

    let certs_dir = args.dir.join("certs");
    if !certs_dir.join("server.pem").exists() {
        certs::write_dev_certs(&certs_dir, true)?;
    }
    crate::private_file::create_dir(&args.dir.join("keys"))?;
    for key in ["keys/audit-checkpoint.key", "keys/audit-pseudonym.key"] {
        let key = args.dir.join(key);
        if !key.exists() {
            super::audit::write_audit_key(&key)?;
        }
    }
    write_policies(&args.dir.join("policies"))?;
    let thumbprint = |name: &str| -> anyhow::Result<String> {
        let chain = crate::certs::read_certs(&certs_dir.join(format!("{name}.pem")))?;
        Ok(crate::audit::hex(
            &PeerCertificate::new(chain[0].clone()).thumbprint_sha256,
        ))
    };
    let clients = Clients {
        partner: thumbprint("client-a")?,
        teller: thumbprint("client-b")?,
    };
    // Demo tokens last an hour: long enough to try, short enough not to linger.
    crate::demo::issuer::setup(&args.dir, crate::store::now_ms() / 1000, 3600)?;
    let config_path = args.dir.join("privgate.toml");
    std::fs::write(&config_path, demo_config(&args, &clients))
        .with_context(|| format!("{}: cannot write", config_path.display()))?;
    init_keyring(&args.dir, &config_path).await?;
    #[cfg(feature = "fhe")]
    if !args.no_fhe {
        crate::demo::fhe::setup(&args.dir, &config_path).await?;
    }
    let idp_address = SocketAddr::from(([127, 0, 0, 1], args.idp_port));
    let idp_listener = TcpListener::bind(idp_address)
        .await
        .with_context(|| format!("demo identity provider: cannot bind {idp_address}"))?;
    let idp_task = tokio::spawn(crate::demo::sign_in::serve(
        idp_listener,
        args.dir.clone(),
        console_redirect_uri(&args),
    ));
    let store_url = crate::config::load(&config_path)?.store.url;
    crate::demo::analytics::load(&store_url, &args.dir).await?;

    let control = super::serve::forward_signals()?;
    let server = Server::bind(&config_path).await?;
    print_instructions(&args, &config_path);
    server.run(control).await;
    upstream_task.abort();
    idp_task.abort();
    println!("demo stopped");
    Ok(())
}

/// The shipped example policy set, embedded so the demo runs from any directory.
/// The demo's keyring: a raw 256-bit key-encryption key in `keys/kek.key` (mode 0600; a
/// production gateway would use a passphrase or an HSM, see docs/keys.md), and the keyring
/// created in the demo's store on the first run.
async fn init_keyring(dir: &Path, config_path: &Path) -> anyhow::Result<()> {
    use crate::private_file::Existing;
    use ring::rand::SecureRandom;
    let kek = dir.join("keys/kek.key");
    if !kek.exists() {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        ring::rand::SystemRandom::new()
            .fill(key.as_mut())
            .map_err(|_| anyhow::anyhow!("random generator unavailable"))?;
        let hex = zeroize::Zeroizing::new(crate::audit::hex(key.as_ref()));
        crate::private_file::write(&kek, hex.as_bytes(), Existing::Refuse)
            .with_context(|| format!("{}: cannot create", kek.display()))?;
    }
    let config = crate::config::load(config_path)?;
    let keys = config
        .keys
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("demo config has no [keys]"))?;
    let store = crate::store::Store::open_configured(&config.store).await?;
    if store.keyring_row().await?.is_none() {
        let material = crate::keys::kek::read_material(&keys.kek)?;
        crate::keys::maintenance::init(&store, &material, keys.argon2).await?;
    }
    store.close().await;
    Ok(())
}

const POLICIES: &[(&str, &str)] = &[
    (
        "schema.cedarschema",
        include_str!("../../policies/schema.cedarschema"),
    ),
    ("fields.toml", include_str!("../../policies/fields.toml")),
    ("routes.toml", include_str!("../../policies/routes.toml")),
    ("admin.cedar", include_str!("../../policies/admin.cedar")),
    (
        "console.cedar",
        include_str!("../../policies/console.cedar"),
    ),
    (
        "analytics.cedar",
        include_str!("../../policies/analytics.cedar"),
    ),
    (
        "aggregates.cedar",
        include_str!("../../policies/aggregates.cedar"),
    ),
    ("access.cedar", include_str!("../../policies/access.cedar")),
    (
        "consent.cedar",
        include_str!("../../policies/consent.cedar"),
    ),
    (
        "payments.cedar",
        include_str!("../../policies/payments.cedar"),
    ),
    ("risk.cedar", include_str!("../../policies/risk.cedar")),
    (
        "tests/console.json",
        include_str!("../../policies/tests/console.json"),
    ),
    (
        "tests/risk.json",
        include_str!("../../policies/tests/risk.json"),
    ),
    (
        "tests/story.json",
        include_str!("../../policies/tests/story.json"),
    ),
];

/// Writes the example policies once; later runs keep whatever the user changed.
fn write_policies(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("tests"))
        .with_context(|| format!("{}: cannot create", dir.display()))?;
    for (name, text) in POLICIES {
        let path = dir.join(name);
        if !path.exists() {
            std::fs::write(&path, text)
                .with_context(|| format!("{}: cannot write", path.display()))?;
        }
    }
    Ok(())
}

/// Certificate thumbprints of the demo's two registered clients.
struct Clients {
    partner: String,
    teller: String,
}

fn demo_config(args: &Args, clients: &Clients) -> String {
    format!(
        r#"# Written by `privgate demo`; rewritten on every run.
[[listener]]
name = "public"
address = "127.0.0.1:{port}"
cert = "certs/server.pem"
key = "certs/server.key.pem"
client_ca = "certs/ca.pem"
client_auth = "optional"

[admin]
address = "127.0.0.1:{admin}"

# Every request is recorded in a hash chain (audit/demo.jsonl), pinned by checkpoints.
[audit]
dir = "audit"
replica = "demo"
checkpoint_sink = "audit-checkpoints/checkpoints.jsonl"
checkpoint_key_file = "keys/audit-checkpoint.key"
pseudonym_key_file = "keys/audit-pseudonym.key"

# Consent records and the keyring live in privgate.db (SQLite) beside this file.
[policy]
dir = "policies"

# Field-protection keys, wrapped under a raw key-encryption key (development only: use a
# passphrase or an HSM in production, see docs/keys.md).
[keys]
kek = {{ source = "key_file", path = "keys/kek.key" }}

# Registered clients, pinned by certificate thumbprint (privgate certs thumbprint FILE).
[[client]]
id = "fintech-app"
certificate_sha256 = "{partner}"
roles = ["partner"]
organisation = "fintech"
purposes = ["account_information"]

[[client]]
id = "branch-desk"
certificate_sha256 = "{teller}"
roles = ["teller"]
purposes = ["customer_service"]

[upstream.core_banking]
url = "http://127.0.0.1:{upstream}"

# The same service's customer records, for the fraud-review route below.
[upstream.core_banking_customers]
url = "http://127.0.0.1:{upstream}/customers"

# Customer and account routes are decided by the Cedar policies in policies/. Each names
# its data subject (the customer) and the one spelling of a customer id: 1 to 10 digits
# without leading zeros, or an onboarded "c-" id; /customers/042 or /customers/+42 is
# refused before any lookup. Customer records carry PII: their bodies are buffered so field
# rules can apply.
[[route]]
name = "customers"
path_prefix = "/customers"
methods = ["GET"]
upstream = "core_banking"
body = "buffered"
action = "customers:read"
subject = {{ from = "path", id = "pattern", pattern = "{customer_id}" }}

# Onboarding: tellers create customers; their PII is protected before the core stores it
# (policies/routes.toml binds the fields, policies/fields.toml says how each is protected).
# The new customer's id is in the body.
[[route]]
name = "customer_create"
path_prefix = "/customers"
methods = ["POST"]
upstream = "core_banking"
body = "buffered"
action = "customers:create"
subject = {{ from = "request", selector = "$.id", id = "pattern", pattern = "{customer_id}" }}

# /accounts/{{id}} names an account, not a customer: the data subject is the account's
# owner, which the core bank names in its answer; nothing is released before the decision
# (and the consent check) on that customer.
[[route]]
name = "accounts"
path_prefix = "/accounts"
methods = ["GET"]
upstream = "core_banking"
body = "buffered"
action = "accounts:read"
subject = {{ from = "response", selector = "$.customer_id", id = "integer" }}

# Payments are decided on their amount: the payments service's staff may pay, and above
# 1,000.00 only within 5 minutes of a second factor (policies/payments.cedar).
[[route]]
name = "payments"
path_prefix = "/payments"
methods = ["POST"]
upstream = "core_banking"
body = "buffered"
action = "payments:create"
amount = "$.amount_minor"

# Token identity: the demo's stand-in identity provider (its key is in keys/, its tokens
# in tokens/). Fraud review needs a sign-in with a second factor in the last 5 minutes.
[[issuer]]
issuer = "{issuer}"
audiences = ["{audience}"]
jwks_file = "demo-issuer-jwks.json"
algorithms = ["ES256"]
require_typ_at_jwt = true
forward_claims = {{ sub = "X-Privgate-Subject" }}
# The purposes each user may act for (policies refuse any other).
purposes_claim = "purposes"
organisation_claim = "org"
# The demo issuer's sign-in endpoints serve the demo's own certificate.
ca = "certs/ca.pem"

# The web console (docs/console.md): people sign in at the demo issuer (a page of demo
# people, no passwords) and see the pages policies/console.cedar allows their roles.
[[route]]
name = "console"
path_prefix = "/console"
serve = "console"

[console]
issuer = "{issuer}"
client_id = "{console_client}"
authorization_endpoint = "https://localhost:{idp}/authorize"
token_endpoint = "https://localhost:{idp}/token"
redirect_uri = "{console_redirect}"
# When policy asks for a fresher factor (approving on the Keys page), the console sends the
# person back to the identity provider asking for this acr, authenticated just now.
step_up_acr_values = ["urn:privgate:demo:otp"]

# Gateway-native second factor (RFC 6238): users enroll at /mfa/v1/totp/enroll with a token,
# then present codes in X-OTP.
[totp]
issuer = "privgate demo"

# Outbound: the payments service asks the card processor (played by the sample upstream) to
# authorise a payment; the FPE-protected card number is revealed toward the processor as
# policy decides for the service, and protected again in its answer.
[[route]]
name = "card_authorization"
path_prefix = "/cards/authorize"
methods = ["POST"]
upstream = "core_banking"
body = "buffered"
action = "cards:authorize"
direction = "outbound"

# Fraud review: customer records for fraud analysts, decided like /customers (its own field
# rules in policies/routes.toml) and only within 5 minutes of a second factor.
[[route]]
name = "fraud-review"
path_prefix = "/review/customers"
strip_prefix = true
methods = ["GET"]
upstream = "core_banking_customers"
body = "buffered"
action = "customers:read"
subject = {{ from = "path", id = "pattern", pattern = "{customer_id}" }}
[route.step_up]
amr_any = ["otp", "hwk", "mfa"]
max_age = "5m"
{analytics}{fhe}{risk}"#,
        risk = crate::demo::risk::config(),
        analytics = crate::demo::analytics::CONFIG,
        fhe = if args.no_fhe { "" } else { FHE_CONFIG },
        issuer = crate::demo::issuer::ISSUER,
        audience = crate::demo::issuer::AUDIENCE,
        port = args.port,
        idp = args.idp_port,
        console_client = crate::demo::sign_in::CLIENT_ID,
        console_redirect = console_redirect_uri(args),
        admin = args.admin_port,
        upstream = args.upstream_port,
        partner = clients.partner,
        teller = clients.teller,
        customer_id = CUSTOMER_ID,
    )
}

/// Where the demo issuer sends people back to the console.
fn console_redirect_uri(args: &Args) -> String {
    format!("https://localhost:{}/console/callback", args.port)
}

/// The one spelling of a demo customer id: a generated customer's number (no sign, no
/// leading zero) or an onboarded customer's `c-` id. The sample upstream reads `042` and
/// `+42` as 42; the gateway never does.
const CUSTOMER_ID: &str = "[1-9][0-9]{0,9}|c-[1-9][0-9]{0,11}";

#[cfg(feature = "fhe")]
const FHE_CONFIG: &str = crate::demo::fhe::CONFIG;
#[cfg(not(feature = "fhe"))]
const FHE_CONFIG: &str = "";

fn print_instructions(args: &Args, config: &Path) {
    let dir = args.dir.display();
    let base = format!("https://localhost:{}", args.port);
    let curl = format!("curl -sS --cacert {dir}/certs/ca.pem");
    let partner = format!("--cert {dir}/certs/client-a.pem --key {dir}/certs/client-a.key.pem");
    let teller = format!("--cert {dir}/certs/client-b.pem --key {dir}/certs/client-b.key.pem");
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "privgate".into());
    println!(
        r#"
privgate demo is running (config: {config}).

  # the web console: open {base}/console/ in a browser (trust {dir}/certs/ca.pem, or accept
  # the warning) and sign in at the demo identity provider as one of its people:
  #   teller (tina.teller): Overview          consent_admin (cora.consent): Overview, Consent
  #   key_custodian (kai.keys): Overview, Keys    analyst (dan.data): Analytics only
  #   security_officer (sam.security): Overview, Decisions, Policies, Audit, Encrypted sums
  #   release_officer (rita.release): Encrypted sums (releases totals)

  # no client certificate: the customer routes are policy-decided, so who is calling?
  {curl} {base}/customers/42
  # the branch desk (a teller, client-b) reads a customer; tellers need no consent
  {curl} {teller} -i {base}/customers/42
  # the fintech partner (client-a) reads account 7's transactions: refused without consent
  # of the account's owner, customer {owner} (the gateway reads the owner from the core
  # bank's answer and releases nothing before deciding on that customer)
  {curl} {partner} {base}/accounts/7/transactions
  # customer 7's consent does not open account 7: account and customer ids are not the same
  {exe} consent --config {config} grant --subject 7 --grantee fintech \
    --purpose account_information --permission ReadAccountsBasic --expires-in 90days
  {curl} {partner} {base}/accounts/7/transactions
  # the owner consents (purpose account_information), and the partner's call passes
  {exe} consent --config {config} grant --subject {owner} --grantee fintech \
    --purpose account_information --permission ReadAccountsBasic --expires-in 90days
  {curl} {partner} {base}/accounts/7/transactions
  # a purpose the partner is not registered for is refused whatever the consent says
  {curl} {partner} -H 'x-purpose: marketing' {base}/accounts/7/transactions
  # the customer withdraws consent: the very next call is refused
  {exe} consent --config {config} list --subject {owner}
  {exe} consent --config {config} revoke CONSENT_ID
  {curl} {partner} {base}/accounts/7/transactions
  # a customer id has one spelling: 042 and +42 are refused, not read as customer 42
  {curl} {teller} {base}/customers/042
  # why: the policies and their test cases
  {exe} policy --dir {dir}/policies test
  {exe} policy --dir {dir}/policies explain --case {dir}/policies/tests/story.json \
    --name 'a partner sees exactly the consented fields'

  # field protection: the teller onboards a customer; the core bank stores only protected
  # values (read it directly, bypassing the gateway): encrypted names, a tokenized IBAN, a
  # format-preserving card number that keeps its first 6 and last 4 digits
  {curl} {teller} -X POST {base}/customers -H 'content-type: application/json' \
    -d '{{"id":"c-100","name":"Jane Example","email":"jane@example.com","phone":"+44 20 7946 0000","national_id":"900-12-3456","date_of_birth":"1987-06-05","address":{{"street":"1 High Street","city":"Leeds","postcode":"LS1 1AA","country":"GB"}},"iban":"GB82WEST12345698765432","card_number":"4000001234567899"}}'
  curl -sS http://127.0.0.1:{upstream}/customers/c-100
  # the teller sees it masked; the partner sees nothing without consent, and with consent
  # for party data sees names and contact details in clear (no card number: not consented)
  {curl} {teller} {base}/customers/c-100
  {curl} {partner} {base}/customers/c-100
  {exe} consent --config {config} grant --subject c-100 --grantee fintech \
    --purpose account_information --permission ReadParty
  {curl} {partner} {base}/customers/c-100
  # the fraud analyst's token also reads customer records through the policy-decided route:
  # masked with the password-only token, card numbers in clear within 5 minutes of an MFA
  # sign-in (policies/access.cedar)
  {curl} -H "authorization: Bearer $(cat {dir}/tokens/password-only.jwt)" {base}/customers/c-100
  {curl} -H "authorization: Bearer $(cat {dir}/tokens/with-mfa.jwt)" {base}/customers/c-100
  # a card number typed into a free-text field never reaches the core bank
  {curl} {teller} -X POST {base}/customers -H 'content-type: application/json' \
    -d '{{"id":"c-101","notes":"card 4111 1111 1111 1111 lost"}}'
  # the customer asks to be forgotten: their keys are destroyed, their data reads as erased
  {exe} keys --config {config} shred --subject c-100
  {curl} {partner} {base}/customers/c-100
  # (customers 1-2000 were stored before protection was turned on: see README, "Existing data")

  # payments are decided on their amount (policies/payments.cedar): no credentials, no
  # payment; the payments desk pays 12.50 with a password sign-in, but 10,000,000.00 asks
  # for a second factor (an RFC 9470 challenge) until it signed in with one
  PAY="-X POST {base}/payments -H content-type:application/json"
  {curl} $PAY -d '{{"from_account":7,"to_iban":"GB33BUKB20201555555555","amount_minor":1250,"currency":"GBP"}}'
  {curl} $PAY -H "authorization: Bearer $(cat {dir}/tokens/payments.jwt)" \
    -d '{{"from_account":7,"to_iban":"GB33BUKB20201555555555","amount_minor":1250,"currency":"GBP"}}'
  {curl} -i $PAY -H "authorization: Bearer $(cat {dir}/tokens/payments.jwt)" \
    -d '{{"from_account":7,"to_iban":"GB33BUKB20201555555555","amount_minor":1000000000,"currency":"GBP"}}'
  {curl} $PAY -H "authorization: Bearer $(cat {dir}/tokens/payments-mfa.jwt)" \
    -d '{{"from_account":7,"to_iban":"GB33BUKB20201555555555","amount_minor":1000000000,"currency":"GBP"}}'
  # a form body is refused (415) even when its bytes happen to be JSON (a string)
  {curl} -X POST {base}/payments -H "authorization: Bearer $(cat {dir}/tokens/payments.jwt)" \
    -d '"&from_account=7&amount_minor=1250"'
  # token identity (valid 1 h from start): fraud review is decided like /customers (card
  # numbers in clear for fraud analysts) and needs a second factor: a password-only sign-in
  # gets an RFC 9470 step-up challenge; the same user after a one-time code gets through
  {curl} -i -H "authorization: Bearer $(cat {dir}/tokens/password-only.jwt)" {base}/review/customers/42
  {curl} -H "authorization: Bearer $(cat {dir}/tokens/with-mfa.jwt)" {base}/review/customers/42
  # a password-only token cannot enroll a second factor for itself: enrolling needs a
  # sign-in with a second factor at the IdP within 5 minutes (401 with the RFC 9470 challenge)
  {curl} -i -X POST -H "authorization: Bearer $(cat {dir}/tokens/password-only.jwt)" {base}/mfa/v1/totp/enroll
  # or with the gateway's own second factor: enroll the demo user (a development shortcut
  # that prints the otpauth:// URI; users self-enroll at {base}/mfa/v1/totp/enroll with a
  # fresh multi-factor sign-in, like with-mfa.jwt in its first 5 minutes), then
  # send a current code from any authenticator (here oathtool, apt install oathtool) with
  # the password-only token; a code is accepted once
  {exe} totp --config {config} dev-enroll --user ana.analyst
  {curl} -H "authorization: Bearer $(cat {dir}/tokens/password-only.jwt)" \
    -H "x-otp: $(oathtool --totp -b SECRET_FROM_THE_URI)" {base}/review/customers/42

{risk_steps}
  # differentially private analytics over the sample bank (docs/analytics.md): an analyst's
  # token, noisy answers with +/- at 95%, a target accuracy, a dry run, and a budget that
  # runs out (each analyst has epsilon 3 per 30 days on each dataset; repeats are cached)
  Q="{exe} query --url {base}/analytics/v1 --ca {dir}/certs/ca.pem --token-file {dir}/tokens/analyst.jwt"
  $Q --dataset transactions --epsilon 0.5 "SELECT city, COUNT(*) FROM transactions GROUP BY city"
  $Q --dataset accounts --epsilon 0.5 "SELECT kind, AVG(balance_minor) FROM accounts GROUP BY kind"
  $Q --dataset transactions --accuracy 5000000 \
    "SELECT counterparty, SUM(amount_minor) FROM transactions WHERE amount_minor < 0 GROUP BY counterparty"
  # merchants have no public list: only those above OpenDP's threshold are released (spends
  # delta too); the market stalls one customer each used never are
  $Q --dataset transactions --epsilon 1 --delta 1e-6 "SELECT merchant, COUNT(*) FROM transactions GROUP BY merchant"
  $Q --dataset accounts --accuracy 50 --dry-run "SELECT city, COUNT(*) FROM accounts GROUP BY city"
  for i in 1 2 3 4 5 6 7; do $Q --dataset accounts --epsilon 0.5 "SELECT MEDIAN(balance_minor) FROM accounts WHERE balance_minor > $i"; done
  # a senior analyst's budget tier (granted by policies/analytics.cedar) is epsilon 6: more left
  {exe} query --url {base}/analytics/v1 --ca {dir}/certs/ca.pem --token-file {dir}/tokens/senior-analyst.jwt \
    --dataset accounts --epsilon 0.5 "SELECT MEDIAN(balance_minor) FROM accounts"
  # a query outside the SQL subset is refused with what is allowed
  $Q --dataset accounts --epsilon 0.1 "SELECT customer_id, balance_minor FROM accounts"
  # CSV (estimate and interval columns per aggregate); what the datasets declare and the
  # budget left, which spend nothing
  $Q --dataset accounts --epsilon 0.2 --output csv "SELECT kind, COUNT(*) FROM accounts GROUP BY kind"
  {curl} -H "authorization: Bearer $(cat {dir}/tokens/analyst.jwt)" {base}/analytics/v1/datasets
  {curl} -H "authorization: Bearer $(cat {dir}/tokens/analyst.jwt)" {base}/analytics/v1/budget
{python}

{fhe_steps}
  # health and metrics (operations listener, plain HTTP on loopback)
  curl -sS http://127.0.0.1:{admin}/readyz
  curl -sS http://127.0.0.1:{admin}/metrics | grep privgate_requests
  # monitoring: point Prometheus at that /metrics; import docs/grafana-dashboard.json into
  # Grafana and load docs/alerts.yml as Prometheus rules (README, "Operations")
  # traces: add to {config} and restart, with any OTLP/HTTP collector (Jaeger, Tempo, an
  # OpenTelemetry Collector) listening there; each request is a trace with a span per phase
  #   [tracing]
  #   endpoint = "http://127.0.0.1:4318/v1/traces"

  # the audit trail: every request above is in a hash chain; verify it, then try editing
  # a line of {dir}/audit/demo.jsonl and verify again
  {exe} audit verify --config {config}
  # who accessed customer 7's data (the trail holds only a keyed pseudonym of the id)
  {exe} audit who-saw --config {config} --subject 7

Ctrl-C stops the gateway (draining in-flight requests) and the sample upstream.
"#,
        config = config.display(),
        admin = args.admin_port,
        upstream = args.upstream_port,
        fhe_steps = if args.no_fhe {
            String::new()
        } else {
            fhe_steps(&dir.to_string(), &base, &curl, &exe)
        },
        python = python_steps(&dir.to_string(), &base),
        risk_steps = crate::demo::risk::instructions(
            &dir.to_string(),
            &base,
            &curl,
            &exe,
            &config.display().to_string()
        ),
        owner = account_owner(7),
    );
}

/// The customer who owns a sample account (accounts and customers are numbered apart).
fn account_owner(account: u32) -> u32 {
    crate::demo::data::Bank::generate()
        .accounts
        .get(account as usize - 1)
        .map_or(0, |a| a.customer_id)
}

/// The Python client's part of the printed steps (clients/python, docs/analytics.md).
fn python_steps(dir: &str, base: &str) -> String {
    format!(
        r#"  # the same from Python (pip install ./clients/python): a pandas DataFrame with
  # estimate and interval columns, the spend in df.attrs; datasets() and budget() spend nothing
  python3 docs/analytics_example.py --url {base}/analytics/v1 --ca {dir}/certs/ca.pem --token-file {dir}/tokens/analyst.jwt
  python3 - <<'PY'
from privgate_client import Client
c = Client("{base}/analytics/v1", token=open("{dir}/tokens/analyst.jwt").read().strip(), ca="{dir}/certs/ca.pem")
print([d["name"] for d in c.datasets()], c.budget()[0]["epsilon_left"])
df = c.query("accounts", "SELECT kind, COUNT(*) FROM accounts GROUP BY kind", epsilon=0.2)
print(df, df.attrs["epsilon_spent"])
PY
"#
    )
}

#[cfg(feature = "fhe")]
fn fhe_steps(dir: &str, base: &str, curl: &str, exe: &str) -> String {
    crate::demo::fhe::instructions(dir, base, curl, exe)
}

#[cfg(not(feature = "fhe"))]
fn fhe_steps(_: &str, _: &str, _: &str, _: &str) -> String {
    String::new()
}
