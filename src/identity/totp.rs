//! Gateway-native TOTP (RFC 6238): enrollment, confirmation, and codes on requests.
//!
//! Contract:
//! - A secret is random (20, 32 or 64 bytes for SHA1, SHA256, SHA512, the key sizes of
//!   RFC 6238's test vectors), sealed with the keyring's `totp` key (the one AEAD wrapper,
//!   the user id as associated data, so a sealed secret moved to another user does not
//!   open), and shown once, as an `otpauth://` URI and its QR code.
//! - A code is accepted for the current 30-second step or the one before (clock skew and
//!   typing time), never a future one, and only if its step is above every step accepted
//!   for the user before: the store advances that mark with one conditional update, so a
//!   code is good once, across replicas and concurrent requests.
//! - `max_failures` wrong codes in a row lock the user for `lockout`; while locked no code
//!   is even checked. A replayed valid code is refused but does not count toward the
//!   lockout (whoever replays it already knows it).
//! - Enrolling is itself a step-up (the gateway's endpoints ask `[totp.enrollment.step_up]`
//!   of the token before calling [`enroll`]): the factor that later satisfies step-up is
//!   never added on the strength of a password alone.
//! - A pending enrollment belongs to the session that started it ([`session_of`]): until
//!   `pending_ttl` has passed no other session replaces it
//!   ([`IdentityError::OtpEnrollmentPending`]) or confirms it (refused before the code is
//!   even checked, so another session cannot lock the user out either).
//! - Codes, secrets and URIs never appear in logs, errors or `Debug` output.

use super::error::IdentityError;
use crate::config::{TotpAlgorithm, TotpConfig};
use crate::keys::{aead, KeyKind, Keyring};
use crate::store::{PendingSession, Store, TotpRow};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use totp_rs::{Algorithm, TOTP};
use zeroize::Zeroizing;

/// The keyring data key that seals TOTP secrets.
pub(crate) const TOTP_KEY: &str = "totp";

/// RFC 6238's recommended time step, which every authenticator app assumes.
const STEP_SECONDS: u64 = 30;

/// The session of enrollments an operator makes (`privgate totp provision`); token sessions
/// are hex digests, so no token session is ever this one.
pub(crate) const OPERATOR_SESSION: &str = "operator";

/// What a one-time code is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeUse<'a> {
    /// A request's `X-OTP`: needs a confirmed enrollment.
    Request,
    /// Confirming the pending enrollment that `session` started.
    Confirm {
        /// The confirming session ([`session_of`], or [`OPERATOR_SESSION`]).
        session: &'a str,
    },
}

/// What checking a one-time code needs: the settings, the keyring and the store.
#[derive(Clone, Copy)]
pub(crate) struct TotpContext<'a> {
    /// `[totp]`.
    pub settings: &'a TotpConfig,
    /// Seals and opens secrets.
    pub keyring: &'a Keyring,
    /// Enrollments and replay state.
    pub store: &'a Store,
}

/// A new enrollment's secret as the user's authenticator app takes it; shown once.
pub(crate) struct Enrollment {
    /// `otpauth://totp/...` (carries the secret).
    pub uri: Zeroizing<String>,
    /// The URI as an SVG QR code.
    pub qr_svg: Zeroizing<String>,
}

impl<'a> TotpContext<'a> {
    /// The context for `settings`; fails closed without a keyring or a store.
    pub(crate) fn new(
        settings: &'a TotpConfig,
        state: super::IdentityState<'a>,
    ) -> Result<Self, IdentityError> {
        Ok(Self {
            settings,
            keyring: state.keyring.ok_or_else(|| unavailable("no keyring"))?,
            store: state.store.ok_or_else(|| unavailable("no store"))?,
        })
    }
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrollment(..)")
    }
}

fn unavailable(e: impl std::fmt::Display) -> IdentityError {
    IdentityError::OtpUnavailable(e.to_string())
}

fn algorithm(a: TotpAlgorithm) -> Algorithm {
    match a {
        TotpAlgorithm::Sha1 => Algorithm::SHA1,
        TotpAlgorithm::Sha256 => Algorithm::SHA256,
        TotpAlgorithm::Sha512 => Algorithm::SHA512,
    }
}

fn secret_len(a: TotpAlgorithm) -> usize {
    match a {
        TotpAlgorithm::Sha1 => 20,
        TotpAlgorithm::Sha256 => 32,
        TotpAlgorithm::Sha512 => 64,
    }
}

fn associated_data(user: &str) -> Vec<u8> {
    format!("privgate-totp:{user}").into_bytes()
}

/// A generator for `secret` with 30-second steps and no skew (steps are chosen here).
pub(crate) fn generator(a: TotpAlgorithm, digits: u32, secret: Vec<u8>) -> TOTP {
    TOTP::new_unchecked(
        algorithm(a),
        digits as usize,
        0,
        STEP_SECONDS,
        secret,
        None,
        String::new(),
    )
}

/// The time step `code` belongs to: the current one or the one before, never a later one.
pub(crate) fn matching_step(totp: &TOTP, code: &str, now_s: u64) -> Option<i64> {
    let current = now_s / STEP_SECONDS;
    [current, current.saturating_sub(1)]
        .into_iter()
        .find(|step| totp.check(code, step * STEP_SECONDS))
        .and_then(|step| i64::try_from(step).ok())
}

/// The session a token belongs to, for binding a pending enrollment: its issuer with its
/// `sid` (OpenID Connect session), else its `auth_time` (one sign-in, whatever tokens are
/// refreshed from it), else its `jti`; as a SHA-256 hex digest. `None` for callers without
/// a token, or a token with none of those claims (it cannot enroll).
pub(crate) fn session_of(identity: &super::Identity) -> Option<String> {
    let token = identity.token.as_ref()?;
    let session = match (&token.session_id, identity.auth_time, &token.jti) {
        (Some(sid), _, _) => format!("sid\0{sid}"),
        (None, Some(auth_time), _) => format!("auth_time\0{auth_time}"),
        (None, None, Some(jti)) => format!("jti\0{jti}"),
        (None, None, None) => return None,
    };
    let text = format!("{}\0{}\0{session}", token.issuer, token.subject);
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    Some(crate::audit::hex(digest.as_ref()))
}

/// Pending enrollments created at or before this have expired (unix ms).
fn pending_expired_before(settings: &TotpConfig, now_ms: i64) -> i64 {
    let ttl = i64::try_from(settings.enrollment.pending_ttl.as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_sub(ttl)
}

/// Creates a pending enrollment for `user` started by `session`, or replaces one the same
/// session started (or one past `pending_ttl`). Refused with
/// [`IdentityError::OtpAlreadyEnrolled`] while a confirmed one exists and with
/// [`IdentityError::OtpEnrollmentPending`] while another session's pending one is current.
pub(crate) async fn enroll(
    ctx: TotpContext<'_>,
    user: &str,
    session: &str,
    algo: TotpAlgorithm,
    digits: u32,
    now_ms: i64,
) -> Result<Enrollment, IdentityError> {
    let mut secret = Zeroizing::new(vec![0u8; secret_len(algo)]);
    crate::keys::random(&mut secret).map_err(unavailable)?;
    ctx.keyring
        .ensure(TOTP_KEY, KeyKind::Aead)
        .await
        .map_err(unavailable)?;
    let key = ctx
        .keyring
        .encryption_key(TOTP_KEY, 1)
        .await
        .map_err(unavailable)?;
    let sealed = aead::seal(key.secret(), &associated_data(user), &secret).map_err(unavailable)?;
    let row = TotpRow {
        user_id: user.to_owned(),
        sealed: URL_SAFE_NO_PAD.encode(sealed),
        key_version: i64::from(key.version()),
        algorithm: algo.as_str().to_owned(),
        digits: i64::from(digits),
        active: false,
        last_step: 0,
        failures: 0,
        locked_until: 0,
        created_at: now_ms,
        session: session.to_owned(),
    };
    let expired_before = pending_expired_before(ctx.settings, now_ms);
    let written = ctx
        .store
        .put_totp_enrollment(&row, expired_before)
        .await
        .map_err(unavailable)?;
    if !written {
        let existing = ctx.store.totp_enrollment(user).await.map_err(unavailable)?;
        return Err(match existing {
            Some(row) if !row.active => IdentityError::OtpEnrollmentPending,
            _ => IdentityError::OtpAlreadyEnrolled,
        });
    }
    let mut totp = generator(algo, digits, secret.to_vec());
    totp.issuer = Some(ctx.settings.issuer.clone());
    totp.account_name = user.to_owned();
    let uri = Zeroizing::new(totp.get_url());
    let qr_svg = qrcode::QrCode::new(uri.as_bytes())
        .map_err(unavailable)?
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Ok(Enrollment {
        uri,
        qr_svg: Zeroizing::new(qr_svg),
    })
}

/// Checks a one-time code of `user`: on a confirmed enrollment (a request's `X-OTP`), or
/// on the pending one `session` started, which the first good code confirms. Confirming
/// another session's or an expired pending enrollment is refused before the code is checked
/// (and counts no failure).
pub(crate) async fn check_code(
    ctx: TotpContext<'_>,
    user: &str,
    code: &str,
    code_use: CodeUse<'_>,
    now_ms: i64,
) -> Result<(), IdentityError> {
    let confirming = match code_use {
        CodeUse::Request => None,
        CodeUse::Confirm { session } => Some(PendingSession {
            session,
            expired_before_ms: pending_expired_before(ctx.settings, now_ms),
        }),
    };
    let row = ctx
        .store
        .totp_enrollment(user)
        .await
        .map_err(unavailable)?
        .filter(|r| r.active != confirming.is_some())
        .ok_or(IdentityError::OtpInvalid("not enrolled"))?;
    if let Some(pending) = confirming {
        if row.session != pending.session {
            return Err(IdentityError::OtpInvalid("enrollment of another session"));
        }
        if row.created_at <= pending.expired_before_ms {
            return Err(IdentityError::OtpInvalid("enrollment expired"));
        }
    }
    if row.locked_until > now_ms {
        return Err(locked(row.locked_until, now_ms, false));
    }
    let step = match well_formed(code, row.digits) {
        true => step_of(ctx, &row, code, now_ms).await?,
        false => None,
    };
    let Some(step) = step else {
        let locked_until = ctx
            .store
            .record_totp_failure(
                user,
                i64::from(ctx.settings.max_failures),
                now_ms,
                i64::try_from(ctx.settings.lockout.as_millis()).unwrap_or(i64::MAX),
            )
            .await
            .map_err(unavailable)?;
        return Err(match locked_until > now_ms {
            true => locked(locked_until, now_ms, true),
            false => IdentityError::OtpInvalid("wrong code"),
        });
    };
    match ctx
        .store
        .accept_totp_step(user, step, confirming, now_ms)
        .await
        .map_err(unavailable)?
    {
        true => Ok(()),
        false => Err(IdentityError::OtpInvalid("code already used")),
    }
}

fn well_formed(code: &str, digits: i64) -> bool {
    code.len() as i64 == digits && code.bytes().all(|b| b.is_ascii_digit())
}

fn locked(until_ms: i64, now_ms: i64, started: bool) -> IdentityError {
    let seconds = (until_ms - now_ms + 999) / 1000;
    IdentityError::OtpLocked {
        retry_after_s: u64::try_from(seconds.max(1)).unwrap_or(1),
        started,
    }
}

/// Opens the user's secret and finds the step the code belongs to.
async fn step_of(
    ctx: TotpContext<'_>,
    row: &TotpRow,
    code: &str,
    now_ms: i64,
) -> Result<Option<i64>, IdentityError> {
    let version = u32::try_from(row.key_version).map_err(unavailable)?;
    let key = ctx
        .keyring
        .version(TOTP_KEY, version)
        .await
        .map_err(unavailable)?;
    let sealed = URL_SAFE_NO_PAD.decode(&row.sealed).map_err(unavailable)?;
    let secret =
        aead::open(key.secret(), &associated_data(&row.user_id), &sealed).map_err(unavailable)?;
    let algo = TotpAlgorithm::parse(&row.algorithm)
        .ok_or_else(|| unavailable("stored TOTP algorithm unknown"))?;
    let digits = u32::try_from(row.digits).map_err(unavailable)?;
    let totp = generator(algo, digits, secret.to_vec());
    let now_s = u64::try_from(now_ms / 1000).unwrap_or(0);
    Ok(matching_step(&totp, code, now_s))
}

#[cfg(test)]
mod tests;
