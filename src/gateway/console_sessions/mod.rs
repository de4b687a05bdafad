//! Web console sessions and sign-ins in progress, kept in the store so that every replica
//! behind a load balancer serves them alike: a session works on any replica, an OIDC
//! callback may land on another replica than the one that began the sign-in, and a
//! sign-out (or a session ended because its token is no longer accepted) ends it on all.
//!
//! A session is a random 256-bit id in an `HttpOnly`, `Secure`, `SameSite=Strict` cookie
//! with the `__Host-` prefix (so it can only have been set by this host, over HTTPS, for
//! the whole site). The store keeps its row under the id's SHA-256, so a store dump gives
//! no cookie, and the access token the person signed in with (every page checks it again
//! as a bearer token, so expiry and revocation end the session) sealed under a key derived
//! from the id, so a store reader without the cookie gets no usable token. The CSRF token
//! is derived from the id too, never stored ([`cookie_keys`]). A session ends after
//! `idle_timeout` unused or `absolute_timeout` after sign-in, whichever comes first; an
//! expired row is removed when found, and every sign-in sweeps them. Ids are made only at
//! sign-in (never taken from a request), so a session cannot be fixed in advance.
//!
//! A sign-in in progress is a second, `SameSite=Lax` cookie (the issuer sends the browser
//! back with a top-level GET from its own site), its row keyed the same way and holding
//! the OAuth `state`'s SHA-256, the PKCE verifier sealed under the sign-in cookie's id and
//! the console page to return to. It is used once: finishing removes the row in the
//! statement that reads it, so of two replicas given the same callback only one goes on.
//!
//! A store that cannot be read or written is an error for the caller (the rescue step's
//! 503), never a session accepted or an empty answer.

mod cookie_keys;
#[cfg(test)]
mod tests;

use crate::config::ConsoleConfig;
use crate::store::{
    now_ms, ConsoleSessionRow, ConsoleSignInRow, SessionCutoffs, SessionLookup, Store, StoreError,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cookie_keys::{digest, CookieId, Purpose};
use ring::rand::{SecureRandom, SystemRandom};
use std::time::Duration;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The session cookie's name: `__Host-` makes browsers refuse it unless it is `Secure`,
/// set over HTTPS, for `Path=/` and without `Domain`.
pub(crate) const SESSION_COOKIE: &str = "__Host-privgate-console";

/// The sign-in-in-progress cookie's name.
pub(crate) const SIGN_IN_COOKIE: &str = "__Host-privgate-sign-in";

/// How long a person has to finish signing in at the issuer.
pub(crate) const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(600);

/// Most sessions stored at once, all replicas together: a bound on the table whatever is
/// thrown at the sign-in endpoints (a full table refuses new sign-ins until sessions end;
/// existing ones go on). Concurrent sign-ins on several replicas may pass it by a few.
const MAX_SESSIONS: i64 = 10_000;

/// Most sign-ins in progress at once (each a few hundred bytes until it times out).
const MAX_SIGN_INS: i64 = 10_000;

/// What a page learns of its session.
pub(crate) struct Current {
    /// The access token to identify the person with.
    pub(crate) access_token: Zeroizing<String>,
    /// The token every form of this session must carry.
    pub(crate) csrf: String,
}

/// Why there is no current session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoSession {
    /// No cookie, or one no replica issued (or whose session has ended).
    Absent,
    /// A session that timed out (idle or absolute): the person is told so.
    Expired,
}

/// The console's sessions and sign-ins in progress. They live in the store (see the module
/// doc): this holds no state of its own, so a reload or another replica signs nobody out.
#[derive(Default)]
pub(crate) struct ConsoleSessions;

impl ConsoleSessions {
    /// Starts a sign-in that returns to the console page `return_to` (the home page when
    /// none): returns the cookie value, the OAuth `state` and the PKCE verifier; `None`
    /// when too many sign-ins are in progress.
    pub(crate) async fn begin_sign_in(
        &self,
        store: &Store,
        return_to: Option<&'static str>,
    ) -> Result<Option<(String, String, Zeroizing<String>)>, StoreError> {
        let (Some(cookie), Some(state), Some(verifier)) = (random(), random(), random()) else {
            return Ok(None);
        };
        let verifier = Zeroizing::new(verifier);
        let id = CookieId::parse(&cookie).ok_or_else(sealing_failed)?;
        let row = ConsoleSignInRow {
            id_digest: id.digest().to_owned(),
            state_digest: digest(&state),
            sealed_verifier: id
                .seal(Purpose::SignInVerifier, verifier.as_bytes())
                .ok_or_else(sealing_failed)?,
            return_to: return_to.unwrap_or("").to_owned(),
            created_ms: now_ms(),
        };
        let expired_before = row.created_ms.saturating_sub(millis(SIGN_IN_TIMEOUT));
        let begun = store
            .begin_console_sign_in(&row, expired_before, MAX_SIGN_INS)
            .await?;
        Ok(begun.then_some((cookie, state, verifier)))
    }

    /// Ends the sign-in the cookie names and returns its PKCE verifier (and the page to
    /// return to, which `page` must know: the store is an input) when `state` is the one
    /// it was started with and it has not timed out; used once, whatever the answer.
    pub(crate) async fn finish_sign_in(
        &self,
        store: &Store,
        cookie: &str,
        state: &str,
        page: impl Fn(&str) -> Option<&'static str>,
    ) -> Result<Option<(Zeroizing<String>, Option<&'static str>)>, StoreError> {
        let Some(id) = CookieId::parse(cookie) else {
            return Ok(None);
        };
        let Some(row) = store.take_console_sign_in(id.digest()).await? else {
            return Ok(None);
        };
        let same = bool::from(digest(state).as_bytes().ct_eq(row.state_digest.as_bytes()));
        let fresh = row.created_ms > now_ms().saturating_sub(millis(SIGN_IN_TIMEOUT));
        let return_to = match row.return_to.as_str() {
            "" => Some(None),
            named => page(named).map(Some),
        };
        let verifier = id.open(Purpose::SignInVerifier, &row.sealed_verifier);
        Ok(match (same && fresh, verifier, return_to) {
            (true, Some(verifier), Some(return_to)) => Some((verifier, return_to)),
            _ => None,
        })
    }

    /// Opens a session for a person whose token was just checked; returns the cookie value,
    /// or `None` when the session table is full.
    pub(crate) async fn open(
        &self,
        store: &Store,
        access_token: Zeroizing<String>,
        limits: &ConsoleConfig,
    ) -> Result<Option<String>, StoreError> {
        let Some(cookie) = random() else {
            return Ok(None);
        };
        let id = CookieId::parse(&cookie).ok_or_else(sealing_failed)?;
        let now = now_ms();
        let row = ConsoleSessionRow {
            id_digest: id.digest().to_owned(),
            sealed_token: id
                .seal(Purpose::SessionToken, access_token.as_bytes())
                .ok_or_else(sealing_failed)?,
            created_ms: now,
            last_seen_ms: now,
        };
        let opened = store
            .open_console_session(&row, cutoffs(limits, now), MAX_SESSIONS)
            .await?;
        Ok(opened.then_some(cookie))
    }

    /// The session the cookie names, if it is still within both timeouts (which it then
    /// refreshes); an expired one is removed.
    pub(crate) async fn current(
        &self,
        store: &Store,
        cookie: Option<&str>,
        limits: &ConsoleConfig,
    ) -> Result<Result<Current, NoSession>, StoreError> {
        let Some(id) = cookie.and_then(CookieId::parse) else {
            return Ok(Err(NoSession::Absent));
        };
        let now = now_ms();
        let sealed = match store
            .console_session(id.digest(), cutoffs(limits, now), now)
            .await?
        {
            SessionLookup::Live(sealed) => sealed,
            SessionLookup::Expired => return Ok(Err(NoSession::Expired)),
            SessionLookup::Absent => return Ok(Err(NoSession::Absent)),
        };
        match (id.open(Purpose::SessionToken, &sealed), id.csrf()) {
            (Some(access_token), Some(csrf)) => Ok(Ok(Current { access_token, csrf })),
            _ => {
                // Its row was written by something other than this console: it is nobody.
                tracing::warn!("console session row does not open under its cookie; removed");
                store.close_console_session(id.digest()).await?;
                Ok(Err(NoSession::Absent))
            }
        }
    }

    /// Ends the session the cookie names (sign-out, or a token no longer accepted), on
    /// every replica.
    pub(crate) async fn close(
        &self,
        store: &Store,
        cookie: Option<&str>,
    ) -> Result<(), StoreError> {
        if let Some(id) = cookie.and_then(CookieId::parse) {
            store.close_console_session(id.digest()).await?;
        }
        Ok(())
    }
}

/// Whether `presented` is the session's CSRF token (compared in constant time).
pub(crate) fn csrf_matches(current: &Current, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(current.csrf.as_bytes())))
}

/// Sessions last seen or created at or before these times (unix ms) have expired.
fn cutoffs(limits: &ConsoleConfig, now: i64) -> SessionCutoffs {
    SessionCutoffs {
        idle_before_ms: now.saturating_sub(millis(limits.idle_timeout)),
        created_before_ms: now.saturating_sub(millis(limits.absolute_timeout)),
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Sealing under a freshly derived key failed: not expected with ring's primitives, but
/// reported as the store's failure (a 503) rather than a session opened without it.
fn sealing_failed() -> StoreError {
    StoreError::Invalid("console session sealing failed".into())
}

/// 256 random bits, base64url: a session or sign-in id, `state` or PKCE verifier (RFC
/// 7636 asks 43 to 128 characters of the unreserved set; this is 43).
fn random() -> Option<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SystemRandom::new().fill(bytes.as_mut()).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub(crate) fn cookie<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value: always `Secure`, `HttpOnly`, `Path=/` (the `__Host-` rules).
pub(crate) fn set_cookie(name: &str, value: &str, same_site: &str, max_age: Duration) -> String {
    format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite={same_site}; Max-Age={}",
        max_age.as_secs()
    )
}

/// A `Set-Cookie` value that removes the cookie.
pub(crate) fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
}
