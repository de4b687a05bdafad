//! The Keys page: every key version with its status and, for AES-GCM keys, its uses
//! against the configured bound; how many data subjects were shredded; and the queue of
//! approval-gated operations with Approve and Deny. Key material never leaves the keyring.
//!
//! The queue (key, token and risk operations; consent revocations are on the Consent page)
//! is the console's one approval queue, [`super::approvals`].

use super::approvals::{self, OperationRow};
use super::html::{self, Chrome};
use super::pages::{page_view, query_params, store};
use crate::gateway::context::RequestContext;
use crate::gateway::error::GatewayError;
use crate::gateway::proxy_body::ProxyBody;
use askama::Template;
use http::Response;

/// One key version (never material).
struct KeyVersionRow {
    name: String,
    kind: String,
    version: i64,
    status: String,
    /// `uses / bound (n%)` for AES-GCM versions; empty for the others.
    uses: String,
    /// Whether the version is past 80% of its bound (time to rotate).
    near_bound: bool,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage<'a> {
    chrome: &'a Chrome,
    keyring: bool,
    versions: Vec<KeyVersionRow>,
    shredded: i64,
    operations: Vec<OperationRow>,
    /// The page the queue's forms post to (`keys`).
    queue_page: &'static str,
    notice: &'a str,
}

/// `GET /keys`: key versions, the shredded count and the approval queue.
pub(super) async fn keys(
    ctx: &mut RequestContext<'_>,
) -> Result<Response<ProxyBody>, GatewayError> {
    let (_, chrome) = match page_view(ctx, "keys").await? {
        Ok(viewed) => viewed,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let notice = approvals::notice(query_params(ctx).get("notice").map(String::as_str));
    let store = store(ctx)?;
    let keyring = ctx.shared.keys.0.is_some();
    let (mut versions, mut shredded) = (Vec::new(), 0);
    if keyring {
        let bound = ctx.generation.config.keys.as_ref().map(|k| k.aead_max_uses);
        let rows = store.data_key_rows().await.map_err(internal)?;
        versions = rows
            .into_iter()
            .map(|row| {
                let (uses, near_bound) = match (row.kind.as_str(), bound) {
                    ("aead", Some(bound)) if bound > 0 => {
                        let share = row.uses as f64 / bound as f64;
                        let text = format!("{} / {bound} ({:.1}%)", row.uses, share * 100.0);
                        (text, share >= 0.8)
                    }
                    _ => (String::new(), false),
                };
                KeyVersionRow {
                    name: row.name,
                    kind: row.kind,
                    version: row.version,
                    status: row.status,
                    uses,
                    near_bound,
                }
            })
            .collect();
        shredded = store.shredded_subjects().await.map_err(internal)?;
    }
    let operations = approvals::queue(ctx, approvals::KEYS_PAGE).await?;
    html::page(&KeysPage {
        chrome: &chrome,
        keyring,
        versions,
        shredded,
        operations,
        queue_page: approvals::KEYS_PAGE,
        notice,
    })
}

fn internal(e: crate::store::StoreError) -> GatewayError {
    GatewayError::Internal(format!("keys page: {e}"))
}
