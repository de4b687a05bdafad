//! A sample upstream: a synthetic core-banking JSON API over plain HTTP on loopback.
//!
//! ```text
//! GET  /customers?limit=N&offset=M   page of customers (limit <= 100, default 20)
//! GET  /customers/{id}               one customer
//! GET  /customers/{id}/accounts      the customer's accounts
//! GET  /accounts/{id}/transactions   the account's transactions, with its owner's customer_id
//! POST /payments                     accepts {from_account, to_iban, amount_minor, currency, reference}
//! POST /customers                    onboards a customer: stores the JSON object as received
//!                                    (through the gateway: its PII fields protected), needs a
//!                                    string `id` not already taken; answers it back
//! GET  /customers/{id}               an onboarded customer, exactly as stored
//! POST /cards/authorize              a stand-in card processor (an external party): approves
//!                                    {card_number, amount_minor}, echoing the card number
//! GET  /cards/last                   the last authorisation request exactly as received
//! ```
//!
//! Onboarded customers show what an upstream behind privgate holds: only protected values.

use super::data::Bank;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// Largest payment body the sample accepts.
const MAX_PAYMENT_BYTES: usize = 64 * 1024;

struct State {
    bank: Bank,
    next_payment: AtomicU64,
    /// Onboarded customers by id, each the JSON text as received.
    onboarded: Mutex<HashMap<String, Bytes>>,
    /// The last card authorisation request, as the processor received it.
    last_authorization: Mutex<Bytes>,
}

/// Serves the sample API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) {
    let state = Arc::new(State {
        bank: Bank::generate(),
        next_payment: AtomicU64::new(1),
        onboarded: Mutex::new(HashMap::new()),
        last_authorization: Mutex::new(Bytes::new()),
    });
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    let query = req.uri().query().unwrap_or("").to_owned();
    let bank = &state.bank;
    match (req.method(), path.as_slice()) {
        (&Method::GET, ["customers"]) => {
            let (mut limit, mut offset) = (20usize, 0usize);
            for (k, v) in form_urlencoded::parse(query.as_bytes()) {
                match k.as_ref() {
                    "limit" => limit = v.parse().unwrap_or(limit).min(100),
                    "offset" => offset = v.parse().unwrap_or(0),
                    _ => {}
                }
            }
            let page: Vec<_> = bank.customers.iter().skip(offset).take(limit).collect();
            json(
                StatusCode::OK,
                &serde_json::json!({ "customers": page, "total": bank.customers.len() }),
            )
        }
        (&Method::GET, ["customers", id]) => match customer_index(bank, id) {
            Some(i) => json(StatusCode::OK, &bank.customers[i]),
            None => match state
                .onboarded
                .lock()
                .ok()
                .and_then(|m| m.get(*id).cloned())
            {
                Some(stored) => json_bytes(StatusCode::OK, stored),
                None => not_found(),
            },
        },
        (&Method::POST, ["customers"]) => onboard(state, req.into_body()).await,
        (&Method::POST, ["cards", "authorize"]) => authorize(state, req.into_body()).await,
        (&Method::GET, ["cards", "last"]) => match state.last_authorization.lock() {
            Ok(last) => json_bytes(StatusCode::OK, last.clone()),
            Err(_) => not_found(),
        },
        (&Method::GET, ["customers", id, "accounts"]) => match customer_index(bank, id) {
            Some(i) => {
                let owner = bank.customers[i].id;
                let accounts: Vec<_> = bank
                    .accounts
                    .iter()
                    .filter(|a| a.customer_id == owner)
                    .collect();
                json(StatusCode::OK, &serde_json::json!({ "accounts": accounts }))
            }
            None => not_found(),
        },
        (&Method::GET, ["accounts", id, "transactions"]) => {
            match id
                .parse::<u32>()
                .ok()
                .filter(|&a| a >= 1 && a as usize <= bank.accounts.len())
            {
                // The owner is named in the answer: the account id in the path is not a
                // customer id, and the gateway decides on the customer it finds here.
                Some(account) => json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "account_id": account,
                        "customer_id": bank.accounts[account as usize - 1].customer_id,
                        "transactions": bank.transactions(account),
                    }),
                ),
                None => not_found(),
            }
        }
        (&Method::POST, ["payments"]) => create_payment(state, req.into_body()).await,
        _ => not_found(),
    }
}

#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct PaymentRequest {
    from_account: u32,
    to_iban: String,
    amount_minor: i64,
    currency: String,
    #[serde(default)]
    reference: Option<String>,
}

async fn create_payment(state: &State, body: Incoming) -> Response<Full<Bytes>> {
    let Ok(collected) = Limited::new(body, MAX_PAYMENT_BYTES).collect().await else {
        return json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": "unreadable body" }),
        );
    };
    match serde_json::from_slice::<PaymentRequest>(&collected.to_bytes()) {
        Ok(p) if p.amount_minor > 0 => {
            let id = state.next_payment.fetch_add(1, Ordering::Relaxed);
            json(
                StatusCode::CREATED,
                &serde_json::json!({ "payment_id": format!("pay-{id}"), "status": "accepted", "payment": p }),
            )
        }
        Ok(_) => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &serde_json::json!({ "error": "amount must be positive" }),
        ),
        Err(e) => json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": e.to_string() }),
        ),
    }
}

/// Stores a new customer as received; its `id` must be a fresh string.
async fn onboard(state: &State, body: Incoming) -> Response<Full<Bytes>> {
    let Ok(collected) = Limited::new(body, MAX_PAYMENT_BYTES).collect().await else {
        return json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": "unreadable body" }),
        );
    };
    let bytes = collected.to_bytes();
    let id = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(o)) => o.get("id").and_then(|v| v.as_str()).map(str::to_owned),
        _ => None,
    };
    let Some(id) = id.filter(|id| !id.is_empty() && id.parse::<usize>().is_err()) else {
        return json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": "a JSON object with a non-numeric string id" }),
        );
    };
    let Ok(mut onboarded) = state.onboarded.lock() else {
        return json(StatusCode::INTERNAL_SERVER_ERROR, &serde_json::json!({}));
    };
    if onboarded.contains_key(&id) {
        return json(
            StatusCode::CONFLICT,
            &serde_json::json!({ "error": "id taken" }),
        );
    }
    onboarded.insert(id, bytes.clone());
    json_bytes(StatusCode::CREATED, bytes)
}

#[derive(Deserialize)]
struct Authorization {
    card_number: String,
    amount_minor: i64,
}

/// A card processor's answer: approved when the card number is 16 digits and the amount
/// positive; the request is kept as received (what an external party would see).
async fn authorize(state: &State, body: Incoming) -> Response<Full<Bytes>> {
    let Ok(collected) = Limited::new(body, MAX_PAYMENT_BYTES).collect().await else {
        return json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": "unreadable body" }),
        );
    };
    let bytes = collected.to_bytes();
    if let Ok(mut last) = state.last_authorization.lock() {
        *last = bytes.clone();
    }
    match serde_json::from_slice::<Authorization>(&bytes) {
        Ok(a) => {
            let approved = a.amount_minor > 0
                && a.card_number.len() == 16
                && a.card_number.bytes().all(|b| b.is_ascii_digit());
            json(
                StatusCode::OK,
                &serde_json::json!({
                    "approved": approved,
                    "card_number": a.card_number,
                    "auth_code": if approved { "A1B2C3" } else { "" },
                }),
            )
        }
        Err(e) => json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": e.to_string() }),
        ),
    }
}

fn customer_index(bank: &Bank, id: &str) -> Option<usize> {
    let id: usize = id.parse().ok()?;
    (1..=bank.customers.len()).contains(&id).then(|| id - 1)
}

fn not_found() -> Response<Full<Bytes>> {
    json(
        StatusCode::NOT_FOUND,
        &serde_json::json!({ "error": "not found" }),
    )
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    json_bytes(
        status,
        Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
    )
}

fn json_bytes(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}
