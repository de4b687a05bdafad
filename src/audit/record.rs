//! One audit record and its place in the chain.
//!
//! A record is one JSON line. Its `hash` is SHA-256 over the JSON of every other field,
//! `prev` (the previous record's hash) included, so changing, removing or reordering any
//! record breaks every hash after it. Records carry who, what and why, never a field value,
//! token or secret; the data subject appears only as a keyed pseudonym.

use serde::{Deserialize, Serialize};

/// `prev` of a replica's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, as the request path reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Request id (also returned to the client).
    pub request_id: String,
    /// Who called: the principal as its Cedar type and namespaced id (`User:<sub>`,
    /// `Service:client:<[[client]] id>`, `Service:apikey:<service>`,
    /// `Service:oauth:<client-credentials sub>`), or before identification
    /// `cert-sha256:<thumbprint>` or `anonymous`.
    pub principal: String,
    /// Route name.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Status returned to the client.
    pub status: u16,
    /// `allow` or `deny`.
    pub decision: String,
    /// Ids of the policies that decided.
    pub policy_ids: Vec<String>,
    /// Content hash of the active policy set.
    pub policy_set_hash: Option<String>,
    /// Purpose of use.
    pub purpose: Option<String>,
    /// Consent the decision relied on.
    pub consent_id: Option<String>,
    /// Field classes revealed in clear.
    pub revealed_clear: Vec<String>,
    /// Keyed pseudonym of the data subject.
    pub subject_pseudonym: Option<String>,
    /// The admin action of a gateway-served admin call (absent on proxied requests, so
    /// their records hash as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The admin operation an admin call requested, read or approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    /// The privacy loss an analytics query spent (absent elsewhere, so other records hash
    /// as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy_spend: Option<PrivacySpend>,
    /// The FHE aggregate a call concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_id: Option<String>,
    /// Risk thresholds this request found newly exceeded: names, windows and responses,
    /// never values (absent when none, so other records hash as before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risk_events: Vec<crate::risk::event::RiskEvent>,
    /// The W3C trace id of the request's trace (`[tracing]` on), to find its spans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// What a differentially private query spent, for the audit trail (never the SQL or the
/// answer: only the dataset, the loss and whether it came from the cache).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivacySpend {
    /// The dataset queried.
    pub dataset: String,
    /// Epsilon debited, as a decimal string (0 for cached answers and dry runs).
    pub epsilon: String,
    /// Delta debited, as a decimal string, when a query spent any (GROUP BY a key column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<String>,
    /// Served from the answer cache.
    pub cached: bool,
    /// A dry run (cost only).
    pub dry_run: bool,
    /// The budget tier policy granted, if any (absent: the dataset's default budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tier: Option<String>,
}

/// The hashed part of a record: the event plus its position in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordBody {
    /// Replica that wrote it; each replica has its own chain.
    pub replica: String,
    /// Position in the replica's chain, from 1.
    pub seq: u64,
    /// Unix time in milliseconds.
    pub time_ms: i64,
    /// Hash of the previous record ([`GENESIS`] for the first).
    pub prev: String,
    /// What happened.
    #[serde(flatten)]
    pub event: AuditEvent,
}

/// A record as written: body plus its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The hashed fields.
    #[serde(flatten)]
    pub body: RecordBody,
    /// SHA-256 (hex) of the body's JSON.
    pub hash: String,
}

impl RecordBody {
    /// SHA-256 (hex) over this body's JSON.
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex(ring::digest::digest(&ring::digest::SHA256, &json).as_ref())
    }

    /// Seals the body into a record.
    pub fn seal(self) -> AuditRecord {
        let hash = self.hash();
        AuditRecord { body: self, hash }
    }

    /// Appends the sealed record's JSON line (without the newline) to `out` and returns its
    /// hash (see [`BodyRef::seal_into`]).
    #[cfg(test)]
    pub(crate) fn seal_into(&self, out: &mut Vec<u8>) -> serde_json::Result<String> {
        BodyRef {
            replica: &self.replica,
            seq: self.seq,
            time_ms: self.time_ms,
            prev: &self.prev,
            event: &self.event,
        }
        .seal_into(out)
    }
}

/// A [`RecordBody`] borrowing its parts, as the writer seals it: the same JSON, field for
/// field, without copying the event.
#[derive(Serialize)]
pub(crate) struct BodyRef<'a> {
    pub replica: &'a str,
    pub seq: u64,
    pub time_ms: i64,
    pub prev: &'a str,
    #[serde(flatten)]
    pub event: &'a AuditEvent,
}

impl BodyRef<'_> {
    /// Appends the sealed record's JSON line (without the newline) to `out` and returns its
    /// hash, serialising the body once: a record is its body's JSON object with `hash`
    /// added as the last member, so the bytes hashed are the bytes written, less that member.
    pub(crate) fn seal_into(&self, out: &mut Vec<u8>) -> serde_json::Result<String> {
        let start = out.len();
        serde_json::to_writer(&mut *out, self)?;
        let hash = hex(ring::digest::digest(&ring::digest::SHA256, &out[start..]).as_ref());
        // The body is a non-empty object: drop its closing brace, add the member, close.
        out.pop();
        out.extend_from_slice(b",\"hash\":\"");
        out.extend_from_slice(hash.as_bytes());
        out.extend_from_slice(b"\"}");
        Ok(hash)
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_covers_every_field_and_the_link() {
        let body = RecordBody {
            replica: "gw-1".into(),
            seq: 1,
            time_ms: 1_700_000_000_000,
            prev: GENESIS.into(),
            event: AuditEvent {
                request_id: "r1".into(),
                route: "customers".into(),
                status: 200,
                ..Default::default()
            },
        };
        let sealed = body.clone().seal();
        assert_eq!(sealed.hash.len(), 64);
        assert_eq!(sealed.hash, body.hash());
        let mut edits = vec![body.clone(); 5];
        edits[0].seq = 2;
        edits[1].prev = sealed.hash.clone();
        edits[2].event.status = 403;
        edits[3].event.revealed_clear = vec!["pan".into()];
        edits[4].event.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        for edited in edits {
            assert_ne!(edited.hash(), sealed.hash, "{edited:?}");
        }
        // A written line parses back to the same record.
        let line = serde_json::to_string(&sealed).unwrap();
        assert_eq!(serde_json::from_str::<AuditRecord>(&line).unwrap(), sealed);
        // The writer's single serialisation yields exactly that line and hash.
        let mut written = b"earlier line\n".to_vec();
        assert_eq!(body.seal_into(&mut written).unwrap(), sealed.hash);
        assert_eq!(written, format!("earlier line\n{line}").into_bytes());
    }
}
