//! Web console sessions and sign-ins in progress, held in this replica's memory.
//!
//! A session is a random 256-bit id in an `HttpOnly`, `Secure`, `SameSite=Strict` cookie
//! with the `__Host-` prefix (so it can only have been set by this host, over HTTPS, for
//! the whole site); the server keeps only its SHA-256, so a memory dump of the table gives
//! no cookie. It holds the access token the person signed in with (every page checks it
//! again as a bearer token, so expiry and revocation end the session) and its CSRF token.
//! A session ends after `idle_timeout` unused or `absolute_timeout` after sign-in,
//! whichever comes first. Ids are made only at sign-in (never taken from a request), so a
//! session cannot be fixed in advance.
//!
//! A sign-in in progress is a second, `SameSite=Lax` cookie (the issuer sends the browser
//! back with a top-level GET from its own site) keyed to the OAuth `state` and PKCE
//! verifier; it is used once.

use crate::config::ConsoleConfig;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The session cookie's name: `__Host-` makes browsers refuse it unless it is `Secure`,
/// set over HTTPS, for `Path=/` and without `Domain`.
pub(crate) const SESSION_COOKIE: &str = "__Host-privgate-console";

/// The sign-in-in-progress cookie's name.
pub(crate) const SIGN_IN_COOKIE: &str = "__Host-privgate-sign-in";

/// How long a person has to finish signing in at the issuer.
pub(crate) const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(600);

/// Most sessions held at once: a bound on memory whatever is thrown at the sign-in
/// endpoints (a full table refuses new sign-ins until sessions end; existing ones go on).
const MAX_SESSIONS: usize = 10_000;

/// Most sign-ins in progress at once (each a few hundred bytes until it times out).
const MAX_SIGN_INS: usize = 10_000;

/// One signed-in person.
struct Session {
    access_token: Zeroizing<String>,
    csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// One sign-in in progress.
struct SignIn {
    state: String,
    verifier: Zeroizing<String>,
    created: Instant,
    /// The console page to return to afterwards (a step-up), one of the console's own.
    return_to: Option<&'static str>,
}

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
    /// No cookie, or one this replica never issued.
    Absent,
    /// A session that timed out (idle or absolute): the person is told so.
    Expired,
}

/// Every console session and sign-in of this replica.
#[derive(Default)]
pub(crate) struct ConsoleSessions {
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    sign_ins: Mutex<HashMap<[u8; 32], SignIn>>,
}

impl ConsoleSessions {
    /// Starts a sign-in that returns to the console page `return_to` (the home page when
    /// none): returns the cookie value, the OAuth `state` and the PKCE verifier.
    pub(crate) fn begin_sign_in(
        &self,
        return_to: Option<&'static str>,
    ) -> Option<(String, String, Zeroizing<String>)> {
        let (id, state, verifier) = (random()?, random()?, Zeroizing::new(random()?));
        let mut sign_ins = self.sign_ins.lock().unwrap_or_else(|p| p.into_inner());
        sign_ins.retain(|_, s| s.created.elapsed() < SIGN_IN_TIMEOUT);
        if sign_ins.len() >= MAX_SIGN_INS {
            return None;
        }
        let entry = SignIn {
            state: state.clone(),
            verifier: verifier.clone(),
            created: Instant::now(),
            return_to,
        };
        sign_ins.insert(digest(&id), entry);
        Some((id, state, verifier))
    }

    /// Ends the sign-in the cookie names and returns its PKCE verifier (and the page to
    /// return to) when `state` is the one it was started with and it has not timed out;
    /// used once, whatever the answer.
    pub(crate) fn finish_sign_in(
        &self,
        cookie: &str,
        state: &str,
    ) -> Option<(Zeroizing<String>, Option<&'static str>)> {
        let mut sign_ins = self.sign_ins.lock().unwrap_or_else(|p| p.into_inner());
        let sign_in = sign_ins.remove(&digest(cookie))?;
        let same = bool::from(sign_in.state.as_bytes().ct_eq(state.as_bytes()));
        (same && sign_in.created.elapsed() < SIGN_IN_TIMEOUT)
            .then_some((sign_in.verifier, sign_in.return_to))
    }

    /// Opens a session for a person whose token was just checked; returns the cookie value.
    pub(crate) fn open(
        &self,
        access_token: Zeroizing<String>,
        limits: &ConsoleConfig,
    ) -> Option<String> {
        let (id, csrf) = (random()?, random()?);
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, s| expiry(s, limits).is_none());
        if sessions.len() >= MAX_SESSIONS {
            return None;
        }
        let now = Instant::now();
        let session = Session {
            access_token,
            csrf,
            created: now,
            last_seen: now,
        };
        sessions.insert(digest(&id), session);
        Some(id)
    }

    /// The session the cookie names, if it is still within both timeouts (which it then
    /// refreshes); an expired one is removed.
    pub(crate) fn current(
        &self,
        cookie: Option<&str>,
        limits: &ConsoleConfig,
    ) -> Result<Current, NoSession> {
        let key = digest(cookie.ok_or(NoSession::Absent)?);
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let session = sessions.get_mut(&key).ok_or(NoSession::Absent)?;
        if let Some(why) = expiry(session, limits) {
            sessions.remove(&key);
            return Err(why);
        }
        session.last_seen = Instant::now();
        Ok(Current {
            access_token: session.access_token.clone(),
            csrf: session.csrf.clone(),
        })
    }

    /// Ends the session the cookie names (sign-out, or a token no longer accepted).
    pub(crate) fn close(&self, cookie: Option<&str>) {
        if let Some(cookie) = cookie {
            let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            sessions.remove(&digest(cookie));
        }
    }
}

/// Whether `presented` is the session's CSRF token (compared in constant time).
pub(crate) fn csrf_matches(current: &Current, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(current.csrf.as_bytes())))
}

fn expiry(session: &Session, limits: &ConsoleConfig) -> Option<NoSession> {
    let timed_out = session.last_seen.elapsed() >= limits.idle_timeout
        || session.created.elapsed() >= limits.absolute_timeout;
    timed_out.then_some(NoSession::Expired)
}

/// 256 random bits, base64url: a session id, CSRF token, `state` or PKCE verifier (RFC
/// 7636 asks 43 to 128 characters of the unreserved set; this is 43).
fn random() -> Option<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SystemRandom::new().fill(bytes.as_mut()).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

fn digest(id: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(idle_ms: u64) -> ConsoleConfig {
        ConsoleConfig {
            issuer: "https://idp.example".into(),
            client_id: "console".into(),
            authorization_endpoint: "https://idp.example/authorize".into(),
            token_endpoint: "https://idp.example/token".into(),
            redirect_uri: "https://gw.example/console/callback".into(),
            idle_timeout: Duration::from_millis(idle_ms),
            absolute_timeout: Duration::from_secs(60),
            step_up_acr_values: Vec::new(),
            step_up_max_age: Duration::ZERO,
        }
    }

    #[test]
    fn a_session_is_found_by_its_cookie_only_and_ends_when_idle() {
        let sessions = ConsoleSessions::default();
        let limits = limits(200);
        let id = sessions
            .open(Zeroizing::new("token".into()), &limits)
            .unwrap();
        assert_eq!(id.len(), 43);
        let current = sessions.current(Some(&id), &limits).unwrap();
        assert_eq!(current.access_token.as_str(), "token");
        assert!(csrf_matches(&current, Some(&current.csrf.clone())));
        assert!(!csrf_matches(&current, Some("forged")));
        assert!(!csrf_matches(&current, None));
        assert_eq!(
            sessions.current(Some("made-up"), &limits).err(),
            Some(NoSession::Absent)
        );
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(
            sessions.current(Some(&id), &limits).err(),
            Some(NoSession::Expired)
        );
        // Removed once expired: the same cookie is now unknown.
        assert_eq!(
            sessions.current(Some(&id), &limits).err(),
            Some(NoSession::Absent)
        );
    }

    #[test]
    fn two_sessions_have_different_csrf_tokens() {
        let sessions = ConsoleSessions::default();
        let limits = limits(60_000);
        let a = sessions.open(Zeroizing::new("a".into()), &limits).unwrap();
        let b = sessions.open(Zeroizing::new("b".into()), &limits).unwrap();
        let a = sessions.current(Some(&a), &limits).unwrap();
        let b = sessions.current(Some(&b), &limits).unwrap();
        assert!(!csrf_matches(&b, Some(&a.csrf)));
    }

    #[test]
    fn a_sign_in_is_finished_once_and_only_with_its_state() {
        let sessions = ConsoleSessions::default();
        let (cookie, state, verifier) = sessions.begin_sign_in(None).unwrap();
        assert_eq!(sessions.finish_sign_in(&cookie, "other-state"), None);
        // The wrong state used it up.
        assert_eq!(sessions.finish_sign_in(&cookie, &state), None);
        let (cookie, state, verifier2) = sessions.begin_sign_in(Some("keys")).unwrap();
        assert_ne!(verifier, verifier2);
        assert_eq!(
            sessions.finish_sign_in(&cookie, &state),
            Some((verifier2, Some("keys")))
        );
        assert_eq!(sessions.finish_sign_in(&cookie, &state), None);
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            "x__Host-privgate-console=evil; __Host-privgate-console=good"
                .parse()
                .unwrap(),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("good"));
    }
}
