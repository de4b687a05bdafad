//! The effective configuration (`privgate check --print-effective`): the file as the
//! gateway reads it, every default filled in and every relative path resolved, as TOML,
//! with secrets redacted.
//!
//! privgate.toml names secrets by file (`*_file`, `[keys] kek`), by environment variable
//! name or by file descriptor, never inline, and only those names are printed: no secret
//! file is read here. What can still carry a secret inline is a URL (`user:password@` or a
//! query such as `?password=` that PostgreSQL URLs accept): its credentials and its whole
//! query become `<redacted>`. A value under a key whose name says it is a secret
//! (`secret`, `password`, `passphrase`, `token` ..., other than a `*_file` path) is
//! redacted whole, so a secret-bearing key added later cannot leak through this output.

use super::Config;
use toml::Value;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Words in a key name that mark its value as a secret (unless it is a `*_file` path).
const SECRET_WORDS: [&str; 6] = [
    "secret",
    "password",
    "passphrase",
    "private",
    "pin",
    "token",
];

/// Key names holding a secret word that are not secrets (labels, endpoints, claim names).
const NOT_SECRETS: [&str; 3] = ["token_label", "token_endpoint", "require_bound_token"];

/// The effective configuration as TOML, secrets redacted.
pub fn effective_toml(config: &Config) -> Result<String, toml::ser::Error> {
    let mut value = Value::try_from(config)?;
    redact(None, &mut value);
    toml::to_string_pretty(&value)
}

fn redact(key: Option<&str>, value: &mut Value) {
    match value {
        Value::String(text) => {
            if key.is_some_and(names_a_secret) {
                REDACTED.clone_into(text);
            } else if let Some(clean) = without_url_credentials(text) {
                *text = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact(key, v)),
        Value::Table(table) => table.iter_mut().for_each(|(k, v)| redact(Some(k), v)),
        _ => {}
    }
}

fn names_a_secret(key: &str) -> bool {
    !key.ends_with("_file")
        && !NOT_SECRETS.contains(&key)
        && SECRET_WORDS.iter().any(|w| key.contains(w))
}

/// `text` with a URL's user information and query redacted, when it is a URL with either.
fn without_url_credentials(text: &str) -> Option<String> {
    let mut url = url::Url::parse(text).ok()?;
    let credentials = !url.username().is_empty() || url.password().is_some();
    let query = url.query().is_some();
    if !credentials && !query {
        return None;
    }
    // Cleared through the parser, so nothing of them survives in any spelling.
    url.set_username("").ok()?;
    url.set_password(None).ok()?;
    url.set_query(None);
    url.set_fragment(None);
    let mut clean = url.to_string();
    if credentials {
        let after_scheme = clean.find("://").map_or(0, |i| i + 3);
        clean.insert_str(after_scheme, &format!("{REDACTED}@"));
    }
    if query {
        clean.push('?');
        clean.push_str(REDACTED);
    }
    Some(clean)
}

#[cfg(test)]
mod tests {
    use super::without_url_credentials;

    #[test]
    fn url_credentials_and_queries_are_redacted_and_plain_urls_kept() {
        let cases = [
            (
                "postgres://app:hunter2@db:5432/pg",
                Some("postgres://<redacted>@db:5432/pg"),
            ),
            (
                "https://tok%40en@idp.example/jwks",
                Some("https://<redacted>@idp.example/jwks"),
            ),
            (
                "postgres://db/pg?password=hunter2&sslmode=verify-full",
                Some("postgres://db/pg?<redacted>"),
            ),
            ("https://idp.example/jwks", None),
            ("sqlite:///var/lib/privgate/store.db", None),
            ("not a url", None),
        ];
        for (text, expected) in cases {
            assert_eq!(without_url_credentials(text).as_deref(), expected, "{text}");
        }
    }
}
