//! Reading and validating `privgate.toml`.
//!
//! Validation collects every problem it finds (not just the first), each naming the file it
//! is about, so an operator fixes a broken config in one pass. Files the config references
//! (certificates, keys, CA bundles) are checked when the gateway builds its runtime state
//! from the config; `privgate check` runs both steps.

use super::credentials::PathResolver;
use super::problems::{ConfigError, Problems};
use super::{defaults, BodyMode, ClientAuth, Config, GatewayService, Hsts};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Reads, parses and validates a configuration file. Relative paths inside it are resolved
/// against the file's directory, so a config works wherever the gateway is started from.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    parse(path, &read(path)?)
}

/// The configuration file's text, for [`parse`].
pub fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::one(path, format!("cannot read: {e}")))
}

/// Parses and validates configuration text that was read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let mut config: Config = toml::from_str(text)
        .map_err(|e| ConfigError::one(path, format!("invalid TOML: {}", e.to_string().trim())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let resolver = PathResolver::new(base);
    resolve_paths(&mut config, &resolver);
    let mut problems = Problems::with_text(path, text);
    if let Some(problem) = resolver.problem() {
        problems.add(problem);
    }
    validate(&config, &mut problems);
    problems.into_result(config)
}

fn resolve_paths(config: &mut Config, resolver: &PathResolver) {
    let base = resolver.base();
    let resolve = |p: &mut PathBuf| resolver.resolve(p);
    for l in &mut config.listeners {
        resolve(&mut l.cert);
        resolve(&mut l.key);
        l.fallback_cert.as_mut().map(resolve);
        l.fallback_key.as_mut().map(resolve);
        l.client_ca.as_mut().map(resolve);
    }
    if let Some(path) = config.store.url.strip_prefix("sqlite://") {
        if !path.starts_with('/') && !path.is_empty() {
            config.store.url = format!("sqlite://{}", base.join(path).display());
        }
    }
    config.store.password_file.as_mut().map(resolve);
    if let Some(fhe) = config.fhe.as_mut() {
        resolve(&mut fhe.dir);
    }
    if let Some(policy) = config.policy.as_mut() {
        resolve(&mut policy.dir);
        policy.trusted_keys.iter_mut().for_each(resolve);
    }
    if let Some(audit) = config.audit.as_mut() {
        resolve(&mut audit.dir);
        resolve(&mut audit.checkpoint_sink);
        resolve(&mut audit.checkpoint_key_file);
        audit.pseudonym_key_file.as_mut().map(resolve);
    }
    if let Some(keys) = config.keys.as_mut() {
        keys.kek.resolve(resolve);
    }
    for u in config.upstreams.values_mut() {
        u.ca.as_mut().map(resolve);
        u.client_cert.as_mut().map(resolve);
        u.client_key.as_mut().map(resolve);
    }
    if let Some(webhook) = config.risk.as_mut().and_then(|r| r.webhook.as_mut()) {
        resolve(&mut webhook.secret_file);
        webhook.ca.as_mut().map(resolve);
    }
    if let Some(tracing) = config.tracing.as_mut() {
        tracing.ca.as_mut().map(resolve);
    }
    super::identity::resolve_paths(&mut config.issuers, resolve);
    super::dataset::resolve_paths(&mut config.datasets, base);
}

fn validate(config: &Config, problems: &mut Problems) {
    validate_listeners(config, problems);
    validate_limits(config, problems);
    for name in &config.forwarding.internal_headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.add(format!(
                "forwarding.internal_headers: `{name}` is not a header name"
            ));
        }
    }
    validate_forwarding(config, problems);
    for (name, upstream) in &config.upstreams {
        validate_upstream(name, upstream, problems);
    }
    validate_routes(config, problems);
    validate_store(config, problems);
    validate_clients(config, problems);
    for (key, approvals) in [
        ("admin.approvals_required", config.admin.approvals_required),
        (
            "admin.consent_revocation_approvals",
            config.admin.consent_revocation_approvals,
        ),
    ] {
        if approvals == 0 || approvals > defaults::ADMIN_MAX_APPROVALS_REQUIRED {
            problems.at(
                key,
                format!(
                    "{key} must be 1 to {}",
                    defaults::ADMIN_MAX_APPROVALS_REQUIRED
                ),
            );
        }
    }
    if config.admin.approval_ttl.is_zero() {
        problems.at(
            "admin.approval_ttl",
            "admin.approval_ttl must be greater than 0",
        );
    }
    if let Some(keys) = &config.keys {
        super::keys::validate(keys, problems);
    }
    super::identity::validate(config, problems);
    super::mfa::validate(config, problems);
    super::console::validate(config, problems);
    super::dataset::validate(&config.datasets, problems);
    super::traces::validate(config, problems);
    if let Some(risk) = &config.risk {
        for problem in risk.problems() {
            problems.add(problem);
        }
    }
    if let Some(audit) = &config.audit {
        if audit.checkpoint_every == 0 || audit.checkpoint_interval.is_zero() {
            problems
                .add("audit.checkpoint_every and audit.checkpoint_interval must be greater than 0");
        }
        let replica = audit.replica_id();
        if replica.is_empty()
            || !replica
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            problems.at(
                "audit.replica",
                format!("audit.replica `{replica}` must be letters, digits, . _ -"),
            );
        }
        if audit.checkpoint_sink.starts_with(&audit.dir) {
            problems.at("audit.checkpoint_sink", "audit.checkpoint_sink must not be inside audit.dir: whoever can rewrite the chain could rewrite its checkpoints too");
        }
    }
    if let Some(policy) = &config.policy {
        if policy
            .trusted_keys
            .iter()
            .any(|k| k.starts_with(&policy.dir))
        {
            problems.at("policy.trusted_keys", "policy.trusted_keys must not be inside policy.dir: whoever can write the policies could replace the key their signature is checked with");
        }
    }
}

fn validate_clients(config: &Config, problems: &mut Problems) {
    let mut seen = HashSet::new();
    for (i, c) in config.clients.iter().enumerate() {
        let key = format!("client.{i}.certificate_sha256");
        let t = &c.certificate_sha256;
        if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            problems.at(
                &key,
                format!(
                    "client `{}`: certificate_sha256 must be 64 hex digits",
                    c.id
                ),
            );
        }
        if !seen.insert(t.to_ascii_lowercase()) {
            problems.at(
                &key,
                format!("client `{}`: certificate_sha256 is registered twice", c.id),
            );
        }
    }
    for r in &config.routes {
        if r.action.is_some() && config.policy.is_none() {
            problems.add(format!(
                "route `{}`: action needs a [policy] section",
                r.name
            ));
        }
        if r.subject.is_some() && r.action.is_none() {
            problems.add(format!(
                "route `{}`: subject is only used with an action",
                r.name
            ));
        }
        if let Some(path) = &r.amount {
            if r.action.is_none() || r.body != BodyMode::Buffered {
                problems.add(format!(
                    "route `{}`: amount needs an action and body = \"buffered\"",
                    r.name
                ));
            }
            if let Err(e) = crate::jsonpath::parse(path) {
                problems.add(format!(
                    "route `{}`: amount `{path}` is not a JSONPath: {e}",
                    r.name
                ));
            }
        }
    }
}

fn validate_store(config: &Config, problems: &mut Problems) {
    let store = &config.store;
    if store.revocation_window > defaults::MAX_REVOCATION_WINDOW {
        problems.at(
            "store.revocation_window",
            "store.revocation_window must be at most 5s",
        );
    }
    if store.url.starts_with("sqlite://") {
        if store.password_file.is_some() {
            problems.at(
                "store.password_file",
                "store.password_file applies to PostgreSQL only",
            );
        }
        return;
    }
    match url::Url::parse(&store.url) {
        Ok(u) if u.scheme() == "postgres" || u.scheme() == "postgresql" => {
            if u.password().is_some() {
                problems.at(
                    "store.url",
                    "store.url must not contain a password; put it in store.password_file",
                );
            }
        }
        _ => problems.at(
            "store.url",
            "store.url must be sqlite://PATH or postgres://USER@HOST/DATABASE",
        ),
    }
}

fn validate_listeners(config: &Config, problems: &mut Problems) {
    if config.listeners.is_empty() {
        problems.add("at least one [[listener]] is required");
    }
    let mut names = HashSet::new();
    let mut addresses = HashSet::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let key = |field: &str| format!("listener.{i}.{field}");
        if !names.insert(&l.name) {
            problems.at(
                &key("name"),
                format!("listener `{}` is defined twice", l.name),
            );
        }
        // Port 0 asks the OS for a free port, so only fixed ports can collide.
        let fixed = l.address.port() != 0;
        if fixed && !addresses.insert(l.address) {
            problems.at(
                &key("address"),
                format!("listener `{}`: address {} is used twice", l.name, l.address),
            );
        }
        if fixed && l.address == config.admin.address {
            problems.at(
                &key("address"),
                format!("listener `{}`: address is the admin address", l.name),
            );
        }
        if l.fallback_cert.is_some() != l.fallback_key.is_some() {
            problems.at(
                &key("fallback_cert"),
                format!(
                    "listener `{}`: fallback_cert and fallback_key go together",
                    l.name
                ),
            );
        }
        match (l.client_auth, &l.client_ca) {
            (ClientAuth::None, Some(_)) => problems.at(&key("client_ca"), format!(
                "listener `{}`: client_ca is set but client_auth is \"none\"; set \"optional\" or \"required\"",
                l.name
            )),
            (ClientAuth::Optional | ClientAuth::Required, None) => problems.at(&key("client_auth"), format!(
                "listener `{}`: client_auth needs client_ca (the CAs client certificates must chain to)",
                l.name
            )),
            _ => {}
        }
        if let Some(hsts) = &l.hsts {
            if hsts.preload && (!hsts.include_subdomains || hsts.max_age < Hsts::PRELOAD_MIN_AGE) {
                problems.at(&key("hsts"), format!(
                    "listener `{}`: hsts preload needs include_subdomains = true and max_age of at least 365 days",
                    l.name
                ));
            }
        }
    }
}

fn validate_limits(config: &Config, problems: &mut Problems) {
    let l = &config.limits;
    let positive = [
        ("max_header_bytes", l.max_header_bytes as u64),
        ("max_headers", l.max_headers as u64),
        ("max_body_bytes", l.max_body_bytes),
        ("max_response_body_bytes", l.max_response_body_bytes),
        ("max_json_depth", l.max_json_depth as u64),
        ("max_connections", l.max_connections as u64),
        (
            "max_concurrent_streams",
            u64::from(l.max_concurrent_streams),
        ),
    ];
    for (name, value) in positive {
        if value == 0 {
            problems.at(
                &format!("limits.{name}"),
                format!("limits.{name} must be greater than 0"),
            );
        }
    }
    // serde_json refuses nesting beyond 128 on its own; a larger limit would never apply.
    if l.max_json_depth > 128 {
        problems.at(
            "limits.max_json_depth",
            "limits.max_json_depth must be at most 128",
        );
    }
    // hyper's HTTP/1 reader needs room for at least one full read buffer.
    if l.max_header_bytes < 8192 {
        problems.at(
            "limits.max_header_bytes",
            "limits.max_header_bytes must be at least 8192",
        );
    }
    for (name, d) in [
        ("header_read_timeout", l.header_read_timeout),
        ("idle_timeout", l.idle_timeout),
        ("request_body_timeout", l.request_body_timeout),
        ("client_write_timeout", l.client_write_timeout),
    ] {
        if d.is_zero() {
            problems.at(
                &format!("limits.{name}"),
                format!("limits.{name} must be greater than 0"),
            );
        }
    }
}

fn validate_upstream(name: &str, u: &super::UpstreamConfig, problems: &mut Problems) {
    match u.url.parse::<http::Uri>() {
        Ok(uri) => {
            let scheme = uri.scheme_str();
            if scheme != Some("http") && scheme != Some("https") {
                problems.at(
                    &format!("upstream.{name}.url"),
                    format!("upstream `{name}`: url must start with http:// or https://"),
                );
            }
            if uri.host().is_none() {
                problems.at(
                    &format!("upstream.{name}.url"),
                    format!("upstream `{name}`: url has no host"),
                );
            }
            if uri.query().is_some() {
                problems.at(
                    &format!("upstream.{name}.url"),
                    format!("upstream `{name}`: url must not have a query"),
                );
            }
            if scheme == Some("https") && u.ca.is_none() {
                problems.at(&format!("upstream.{name}.ca"), format!(
                    "upstream `{name}`: https needs `ca` (the CA bundle the upstream's certificate must chain to)"
                ));
            }
            if scheme == Some("http") && (u.ca.is_some() || u.client_cert.is_some()) {
                problems.at(
                    &format!("upstream.{name}.ca"),
                    format!("upstream `{name}`: ca/client_cert need an https url"),
                );
            }
        }
        Err(_) => problems.at(
            &format!("upstream.{name}.url"),
            format!("upstream `{name}`: url `{}` is not a URL", u.url),
        ),
    }
    if u.client_cert.is_some() != u.client_key.is_some() {
        problems.at(
            &format!("upstream.{name}.client_cert"),
            format!("upstream `{name}`: client_cert and client_key go together"),
        );
    }
    if u.connect_timeout.is_zero() || u.response_timeout.is_zero() {
        problems.at(
            &format!("upstream.{name}.connect_timeout"),
            format!("upstream `{name}`: timeouts must be greater than 0"),
        );
    }
}

/// An FHE route needs the feature, `[fhe]` and the keyring its client key is sealed under.
fn validate_fhe_route(config: &Config, route: &str, problems: &mut Problems) {
    if !cfg!(feature = "fhe") {
        problems.add(format!(
            "route `{route}`: serve = \"fhe\" needs a build with the `fhe` feature"
        ));
    }
    if config.fhe.is_none() || config.keys.is_none() {
        problems.add(format!(
            "route `{route}`: serve = \"fhe\" needs [fhe] and [keys] (the client key is sealed under the keyring)"
        ));
    }
}

/// Client-asserted headers a deployment lets through, and routes that forward the client's
/// `Authorization`: the exceptions to the gateway's header hygiene must be meant.
fn validate_forwarding(config: &Config, problems: &mut Problems) {
    for name in &config.forwarding.pass_client_headers {
        let lower = name.to_ascii_lowercase();
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.add(format!(
                "forwarding.pass_client_headers: `{name}` is not a header name"
            ));
        } else if !crate::client_asserted::is_client_asserted(&lower) {
            problems.add(format!(
                "forwarding.pass_client_headers: `{name}` is not a header the gateway removes \
                 (Authorization is a route's `forward_authorization`)"
            ));
        }
    }
    for r in &config.routes {
        let identifies = r.authenticate
            || r.action.is_some()
            || r.serve.is_some()
            || r.step_up.is_some()
            || r.require_bound_token;
        if r.forward_authorization && identifies {
            problems.add(format!(
                "route `{}`: forward_authorization is only for routes that do not identify \
                 callers (a credential the gateway checks is never forwarded)",
                r.name
            ));
        }
    }
}

fn validate_routes(config: &Config, problems: &mut Problems) {
    let mut names = HashSet::new();
    for (i, r) in config.routes.iter().enumerate() {
        let key = |field: &str| format!("route.{i}.{field}");
        if !names.insert(&r.name) {
            problems.at(&key("name"), format!("route `{}` is defined twice", r.name));
        }
        if r.serve.is_some() {
            if !r.upstream.is_empty() || r.action.is_some() || r.subject.is_some() {
                problems.add(format!(
                    "route `{}`: a route the gateway serves has no upstream, action or subject (its calls are decided one by one)",
                    r.name
                ));
            }
            // TOTP enrolment is the caller's own: no policy decides it.
            if config.policy.is_none() && r.serve != Some(GatewayService::Totp) {
                problems.add(format!(
                    "route `{}`: serve needs a [policy] section (every call is authorised by policy)",
                    r.name
                ));
            }
            match r.serve {
                Some(GatewayService::Fhe) => validate_fhe_route(config, &r.name, problems),
                Some(GatewayService::Totp) => super::mfa::validate_route(config, r, problems),
                _ => {}
            }
        } else if !config.upstreams.contains_key(&r.upstream) {
            problems.at(
                &key("upstream"),
                format!(
                    "route `{}`: upstream `{}` is not defined (add [upstream.{}])",
                    r.name, r.upstream, r.upstream
                ),
            );
        }
        super::subject::validate(r, problems);
        if !r.path_prefix.starts_with('/') {
            problems.at(
                &key("path_prefix"),
                format!("route `{}`: path_prefix must start with /", r.name),
            );
        }
        if let Some(host) = &r.host {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            if bare.is_empty() || bare.contains(['/', ':', '*', ' ']) {
                problems.at(
                    &key("host"),
                    format!("route `{}`: host `{host}` is not a host name", r.name),
                );
            }
        }
        for m in r.methods.iter().flatten() {
            if http::Method::from_bytes(m.as_bytes()).is_err() || m.to_uppercase() != *m {
                problems.at(
                    &key("methods"),
                    format!("route `{}`: `{m}` is not an upper-case HTTP method", r.name),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
