//! One query from request to answer: plan, dry run, cache, tally, debit, release.

use super::mechanism::{self, Plan, PlanError, Privacy, Statistic};
use super::pushdown::{self, ConsentFilter, Tally};
use super::query::{self, Aggregate, Query};
use super::response::{add_delta_left, budget, skeleton};
use super::snapshot::SnapshotCache;
use super::threshold;
use super::AnalyticsError;
use crate::config::dataset::DatasetConfig;
use crate::store::{now_ms, BudgetDebit, CachedAnswer, DebitOutcome, Store};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// Nano-epsilon per epsilon: the ledger's integer unit.
const NANO: f64 = 1e9;

/// Atto-delta per delta: the ledger's integer unit for delta (delta is at most 1).
const ATTO: f64 = 1e18;

/// How long a query waits for an identical one in progress to finish before giving up.
const CACHE_WAIT: Duration = Duration::from_secs(30);

/// How often a waiting query looks for the answer.
const CACHE_POLL: Duration = Duration::from_millis(20);

/// Longest a dataset's source may take over a query's statements before the query fails
/// (nothing spent). Large datasets take seconds to tens of seconds (docs/analytics.md).
const SOURCE_TIMEOUT: Duration = Duration::from_secs(300);

/// A claim older than this is taken over: its holder died or hung (its work is bounded
/// by `SOURCE_TIMEOUT`, well below this).
const CLAIM_STALE: Duration = Duration::from_secs(600);

/// A query as the analyst sends it (`POST /analytics/v1/query`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// The dataset.
    pub dataset: String,
    /// The restricted SQL.
    pub sql: String,
    /// Total epsilon for the query (or `accuracy`).
    pub epsilon: Option<f64>,
    /// Target half-width of every COUNT and SUM's 95% interval (or `epsilon`).
    pub accuracy: Option<f64>,
    /// Delta for a GROUP BY on a key column (default: the dataset's `default_query_delta`);
    /// other queries are pure epsilon-DP and spend no delta.
    #[serde(default)]
    pub delta: Option<f64>,
    /// Answer the cost without spending or querying.
    #[serde(default)]
    pub dry_run: bool,
}

impl AnswerRequest {
    fn privacy(&self) -> Result<Privacy, AnalyticsError> {
        match (self.epsilon, self.accuracy) {
            (Some(e), None) => Ok(Privacy::Epsilon(e)),
            (None, Some(a)) => Ok(Privacy::Accuracy(a)),
            _ => Err(AnalyticsError::InvalidRequest(
                "give exactly one of epsilon (privacy loss for the query) or accuracy (+/- at 95% for COUNT and SUM)".into(),
            )),
        }
    }

    /// The delta a keyed query spends: the request's, else the dataset's default.
    fn delta(&self, config: &DatasetConfig, query: &Query) -> Result<Option<f64>, AnalyticsError> {
        if !query.keyed {
            return Ok(None);
        }
        match self.delta.or(config.default_query_delta) {
            Some(delta) => Ok(Some(delta)),
            None => Err(AnalyticsError::Plan(format!(
                "GROUP BY `{}` releases keys found in the data, only above a DP threshold: this needs delta > 0; give delta (e.g. 1e-8) with the query",
                query.group_by.join(", ")
            ))),
        }
    }
}

/// A finished query: the answer JSON and what it spent (for the audit record).
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The response body.
    pub body: Value,
    /// Epsilon debited now (0 for dry runs and cached answers).
    pub epsilon_spent: f64,
    /// Delta debited now (0 but for keyed queries answered afresh).
    pub delta_spent: f64,
    /// Whether the answer came from the cache.
    pub cached: bool,
}

impl Outcome {
    /// An answer that spent nothing (a dry run or a cached answer).
    fn unspent(body: Value, cached: bool) -> Self {
        Outcome {
            body,
            epsilon_spent: 0.0,
            delta_spent: 0.0,
            cached,
        }
    }
}

/// The current budget period, Unix ms: `[start, end)`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Period {
    pub(super) start: i64,
    pub(super) end: i64,
}

pub(super) fn period(config: &DatasetConfig, now: i64) -> Period {
    let length = i64::try_from(config.budget_period.as_millis()).unwrap_or(i64::MAX);
    let start = now - now.rem_euclid(length);
    Period {
        start,
        end: start.saturating_add(length),
    }
}

pub(super) fn nano(epsilon: f64) -> i64 {
    // Float noise below 1e-12 epsilon is not charged (a requested 0.1 costs 0.1, not
    // 0.1 plus an ulp rounded up to a whole nano-epsilon); anything above rounds up.
    (epsilon * NANO - 1e-3).ceil().max(0.0) as i64
}

pub(super) fn epsilon_of(nano: i64) -> f64 {
    nano as f64 / NANO
}

pub(super) fn atto(delta: f64) -> i64 {
    // As `nano`: float noise far below the unit is not charged, anything above rounds up.
    (delta * ATTO - 1e-3).ceil().max(0.0) as i64
}

pub(super) fn delta_of(atto: i64) -> f64 {
    atto as f64 / ATTO
}

/// Where a query's exact tally comes from (the source database, through the dataset's copy
/// of it when its engine is `snapshot`), and what its rows mean (the definition's digest).
pub(super) struct Source<'d> {
    pub pool: &'d sqlx::AnyPool,
    pub snapshot: Option<&'d SnapshotCache>,
    /// The digest of the dataset's definition, which answers are cached under.
    pub definition: &'d str,
}

pub(super) async fn answer(
    config: &DatasetConfig,
    source: Source<'_>,
    store: &Store,
    analyst: &str,
    request: &AnswerRequest,
) -> Result<Outcome, AnalyticsError> {
    let privacy = request.privacy()?;
    let query = query::parse(&request.sql, config)?;
    let delta = request.delta(config, &query)?;
    let plan = plan_blocking(config, &query, privacy, delta).await?;
    let now = now_ms();
    let period = period(config, now);
    if request.dry_run {
        let mut body = skeleton(config, &query, &plan, None);
        body["dry_run"] = json!(true);
        body["epsilon_cost"] = json!(plan.epsilon);
        body["delta_cost"] = json!(plan.delta);
        body["budget"] = budget_now(store, config, analyst, &period).await?;
        return Ok(Outcome::unspent(body, false));
    }
    let key = cache_key(source.definition, &query, privacy, delta);
    let claim = uuid::Uuid::new_v4().to_string();
    if let Some(cached) = cached_or_claim(store, config, analyst, &period, &key, &claim).await? {
        return Ok(cached);
    }
    let claim = Claim {
        store: store.clone(),
        dataset: config.name.clone(),
        key,
        claim,
        held: true,
    };
    // Cancellable: a caller that goes away (its connection closed) drops this future here,
    // and with it the source's statements; nothing is spent and the claim is let go.
    let read = tokio::time::timeout(SOURCE_TIMEOUT, read_source(config, source, &query)).await;
    let (tally, quantile_rows) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => return Err(claim.let_go(e).await),
        Err(_) => {
            let e = AnalyticsError::Source("the dataset's database did not answer in time".into());
            return Err(claim.let_go(e).await);
        }
    };
    // Not cancellable: once the budget may be debited the answer is made and cached, so a
    // caller that went away meanwhile gets it, free, by asking again.
    let settle = Settle {
        config: config.clone(),
        store: store.clone(),
        analyst: analyst.to_owned(),
        query,
        plan,
        period,
    };
    tokio::spawn(settle.run(claim, tally, quantile_rows))
        .await
        .map_err(|e| AnalyticsError::Internal(e.to_string()))?
}

/// This caller's claim on a cache entry (see `cached_or_claim`): let go when the query
/// fails, or when its future is dropped before the answer is stored, so that the next
/// identical query computes afresh rather than waiting for an answer that never comes.
struct Claim {
    store: Store,
    dataset: String,
    key: String,
    claim: String,
    held: bool,
}

impl Claim {
    /// Lets the claim go (nothing was released) and returns `error`.
    async fn let_go(mut self, error: AnalyticsError) -> AnalyticsError {
        self.held = false;
        let _ = self
            .store
            .release_answer_claim(&self.dataset, &self.key, &self.claim)
            .await;
        error
    }

    /// Stores the answer under the claim: the entry is now the cached answer.
    async fn fulfil(mut self, text: &str) -> Result<(), AnalyticsError> {
        self.held = false;
        self.store
            .store_answer(&self.dataset, &self.key, &self.claim, text, now_ms())
            .await?;
        Ok(())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let (store, dataset, key, claim) = (
            self.store.clone(),
            std::mem::take(&mut self.dataset),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.claim),
        );
        // Dropped mid-read (the caller went away): let go in the background. Without a
        // runtime (shutting down) the claim goes stale and is taken over after CLAIM_STALE.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = store.release_answer_claim(&dataset, &key, &claim).await;
            });
        }
    }
}

/// What a query needs from its tally on: debit, release, cache. Owned, to run as a task
/// of its own that finishes whether or not the caller is still there.
struct Settle {
    config: DatasetConfig,
    store: Store,
    analyst: String,
    query: Query,
    plan: Plan,
    period: Period,
}

impl Settle {
    async fn run(
        self,
        claim: Claim,
        tally: Tally,
        quantile_rows: Vec<Vec<i64>>,
    ) -> Result<Outcome, AnalyticsError> {
        let Settle {
            config,
            store,
            analyst,
            query,
            plan,
            period,
        } = &self;
        let read = (tally, quantile_rows);
        let result = compute(
            config, store, analyst, query, plan, period, &claim.key, read,
        )
        .await;
        let mut outcome = match result {
            Ok(outcome) => outcome,
            // Nothing was released: let the next identical query try afresh.
            Err(e) => return Err(claim.let_go(e).await),
        };
        let budget = outcome
            .body
            .as_object_mut()
            .and_then(|o| o.remove("budget"));
        let text = outcome.body.to_string();
        claim.fulfil(&text).await?;
        // Everyone gets the stored form, this caller too: a JSON round trip may move a
        // float by an ulp, and identical queries must get identical answers.
        outcome.body = parsed(&text)?;
        outcome.body["budget"] = budget.unwrap_or_default();
        Ok(outcome)
    }
}

/// The cached answer of an identical query (waiting while another caller computes it), or
/// `None` once this caller holds `claim` and must compute it; Busy after `CACHE_WAIT`.
async fn cached_or_claim(
    store: &Store,
    config: &DatasetConfig,
    analyst: &str,
    period: &Period,
    key: &str,
    claim: &str,
) -> Result<Option<Outcome>, AnalyticsError> {
    let deadline = tokio::time::Instant::now() + CACHE_WAIT;
    loop {
        let now = now_ms();
        if let CachedAnswer::Ready(text) = store.cached_answer(&config.name, key, now).await? {
            let mut body = parsed(&text)?;
            body["cached"] = json!(true);
            body["epsilon_spent"] = json!(0.0);
            body["delta_spent"] = json!(0.0);
            body["budget"] = budget_now(store, config, analyst, period).await?;
            return Ok(Some(Outcome::unspent(body, true)));
        }
        let expires =
            now.saturating_add(i64::try_from(config.cache_window.as_millis()).unwrap_or(i64::MAX));
        let stale = now - CLAIM_STALE.as_millis() as i64;
        if store
            .claim_answer(&config.name, key, claim, now, expires, stale)
            .await?
        {
            return Ok(None);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AnalyticsError::Busy);
        }
        tokio::time::sleep(CACHE_POLL).await;
    }
}

/// The analyst's budget as the ledger has it now (with the delta left where the dataset
/// has delta budgets), for answers that spend nothing.
pub(super) async fn budget_now(
    store: &Store,
    config: &DatasetConfig,
    analyst: &str,
    period: &Period,
) -> Result<Value, AnalyticsError> {
    let spent = store
        .privacy_budget_spent(&config.name, analyst, period.start)
        .await?;
    let mut body = budget(config, spent, period);
    if config.analyst_delta.is_some() {
        let spent = store
            .privacy_delta_spent(&config.name, analyst, period.start)
            .await?;
        add_delta_left(config, spent, &mut body);
    }
    Ok(body)
}

fn parsed(text: &str) -> Result<Value, AnalyticsError> {
    serde_json::from_str(text).map_err(|e| AnalyticsError::Internal(e.to_string()))
}

/// What an identical query is cached under: the query, its privacy and delta, and the
/// digest of the dataset's definition as configured now. An answer means what the
/// definition said when it was computed (its source, bounds, truncation, the consent
/// purpose that filtered its rows), so a reloaded definition never serves an answer
/// computed under the old one: the first query after the change computes (and spends)
/// afresh.
fn cache_key(definition: &str, query: &Query, privacy: Privacy, delta: Option<f64>) -> String {
    let mut text = format!("{definition}|{}|{privacy:?}", query.normalized());
    if let Some(delta) = delta {
        text.push_str(&format!("|delta {delta:?}"));
    }
    crate::audit::hex(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
}

async fn plan_blocking(
    config: &DatasetConfig,
    query: &Query,
    privacy: Privacy,
    delta: Option<f64>,
) -> Result<Plan, AnalyticsError> {
    let (config, query) = (config.clone(), query.clone());
    tokio::task::spawn_blocking(move || match delta {
        Some(delta) if query.keyed => threshold::plan(&config, &query, privacy, delta),
        _ => mechanism::plan(&config, &query, privacy),
    })
    .await
    .map_err(|e| AnalyticsError::Internal(e.to_string()))?
    .map_err(|e| match e {
        PlanError::Invalid(m) => AnalyticsError::Plan(m),
        PlanError::OpenDp(m) => AnalyticsError::Internal(m),
    })
}

/// Debits the plan's loss and releases the tally through OpenDP: the answer body.
#[allow(clippy::too_many_arguments)]
async fn compute(
    config: &DatasetConfig,
    store: &Store,
    analyst: &str,
    query: &Query,
    plan: &Plan,
    period: &Period,
    key: &str,
    (tally, quantile_rows): (Tally, Vec<Vec<i64>>),
) -> Result<Outcome, AnalyticsError> {
    let debit = BudgetDebit {
        dataset: &config.name,
        analyst,
        period_start: period.start,
        cost_nano: nano(plan.epsilon),
        analyst_limit_nano: nano(config.analyst_epsilon),
        global_limit_nano: nano(config.global_epsilon),
        delta_cost_atto: atto(plan.delta),
        analyst_delta_limit_atto: config.analyst_delta.map_or(0, atto),
        global_delta_limit_atto: config.global_delta.map_or(0, atto),
        query_hash: key,
        now_ms: now_ms(),
    };
    let (spent, delta_spent) = match store.debit_privacy_budget(&debit).await? {
        DebitOutcome::Debited {
            analyst_spent_nano,
            global_spent_nano,
            analyst_delta_atto,
            global_delta_atto,
        } => (
            (analyst_spent_nano, global_spent_nano),
            (analyst_delta_atto, global_delta_atto),
        ),
        outcome => return Err(exhausted(config, store, analyst, plan, period, outcome).await),
    };
    let (cells, released) = if query.keyed {
        keyed_release_blocking(plan.clone(), tally).await?
    } else {
        let cells = mechanism::cell_labels(config, &query.group_by);
        let released = release_blocking(plan.clone(), tally, quantile_rows, cells.clone()).await?;
        (cells, released)
    };
    let mut body = skeleton(config, query, plan, Some((&cells, &released)));
    body["epsilon_spent"] = json!(plan.epsilon);
    body["delta_spent"] = json!(plan.delta);
    body["budget"] = budget(config, spent, period);
    if config.analyst_delta.is_some() {
        add_delta_left(config, delta_spent, &mut body["budget"]);
    }
    Ok(Outcome {
        body,
        epsilon_spent: plan.epsilon,
        delta_spent: plan.delta,
        cached: false,
    })
}

/// The exact tally (and the rows of each quantile) from the dataset's database, or from
/// its copy (the consent filter then read from the store now).
async fn read_source(
    config: &DatasetConfig,
    source: Source<'_>,
    query: &Query,
) -> Result<(Tally, Vec<Vec<i64>>), AnalyticsError> {
    let failed = |e: sqlx::Error| AnalyticsError::Source(e.to_string());
    let pool = source.pool;
    let consent = config
        .require_consent_purpose
        .as_ref()
        .map(|purpose| ConsentFilter {
            purpose: purpose.clone(),
            now_ms: now_ms(),
        });
    let quantiles = query.aggregates().filter_map(|a| match a {
        Aggregate::Quantile(column, _) => Some(column),
        _ => None,
    });
    if let Some(cache) = source.snapshot {
        let snapshot = cache.get(pool, config).await?;
        let consenting: Option<HashSet<String>> = match &consent {
            None => None,
            Some(c) => Some(
                pushdown::run_texts(pool, &pushdown::consenting_sql(c))
                    .await
                    .map_err(failed)?
                    .into_iter()
                    .collect(),
            ),
        };
        let query = query.clone();
        let config = config.clone();
        // A pass over millions of rows: off the runtime's threads.
        return tokio::task::spawn_blocking(move || {
            let tally = snapshot.tally(&config, &query, consenting.as_ref())?;
            let mut quantile_rows = Vec::new();
            for aggregate in query.aggregates() {
                if let Aggregate::Quantile(column, _) = aggregate {
                    quantile_rows.push(snapshot.values(
                        &config,
                        &query,
                        column,
                        consenting.as_ref(),
                    )?);
                }
            }
            Ok((tally, quantile_rows))
        })
        .await
        .map_err(|e| AnalyticsError::Internal(e.to_string()))?;
    }
    let sql = pushdown::tally_sql(config, query, consent.as_ref());
    let tally = pushdown::run_tally(
        pool,
        &sql,
        query.group_by.len(),
        pushdown::sum_columns(query),
    )
    .await
    .map_err(failed)?;
    let mut quantile_rows = Vec::new();
    for column in quantiles {
        let sql = pushdown::values_sql(config, query, column, consent.as_ref());
        quantile_rows.push(pushdown::run_values(pool, &sql).await.map_err(failed)?);
    }
    Ok((tally, quantile_rows))
}

async fn exhausted(
    config: &DatasetConfig,
    store: &Store,
    analyst: &str,
    plan: &Plan,
    period: &Period,
    outcome: DebitOutcome,
) -> AnalyticsError {
    // A store that fails here must not be read as "nothing spent": the message would
    // state the whole budget as left. The analyst gets the store's 503 instead.
    let spent = match (
        store
            .privacy_budget_spent(&config.name, analyst, period.start)
            .await,
        store
            .privacy_delta_spent(&config.name, analyst, period.start)
            .await,
    ) {
        (Ok(epsilon), Ok(delta)) => (epsilon, delta),
        (Err(e), _) | (_, Err(e)) => return e.into(),
    };
    let ((mine, all), (mine_delta, all_delta)) = spent;
    let (what, left, delta_left) = match outcome {
        DebitOutcome::GlobalExhausted => (
            "the dataset's global budget (all analysts together)",
            nano(config.global_epsilon) - all,
            config.global_delta.map(|d| atto(d) - all_delta),
        ),
        _ => (
            "your budget",
            nano(config.analyst_epsilon) - mine,
            config.analyst_delta.map(|d| atto(d) - mine_delta),
        ),
    };
    let (cost, left) = match delta_left {
        Some(delta_left) if plan.delta > 0.0 => (
            format!("epsilon {:.6} and delta {:e}", plan.epsilon, plan.delta),
            format!(
                "epsilon {:.6} and delta {:e}",
                epsilon_of(left.max(0)),
                delta_of(delta_left.max(0))
            ),
        ),
        _ => (
            format!("epsilon {:.6}", plan.epsilon),
            format!("{:.6}", epsilon_of(left.max(0))),
        ),
    };
    let refresh = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_millis(period.end.max(0) as u64),
    );
    AnalyticsError::BudgetExhausted {
        message: format!(
            "privacy budget exhausted: this query costs {cost} and {what} on `{}` has {left} left; it refreshes at {refresh}",
            config.name,
        ),
        retry_after_s: u64::try_from((period.end - now_ms()).max(1000) / 1000).unwrap_or(1),
    }
}

/// Noisy values per aggregate: per release, one value per cell.
pub(super) type Released = Vec<Vec<Vec<i64>>>;

/// The released keys (as one-column cells) and each aggregate's values for them.
async fn keyed_release_blocking(
    plan: Plan,
    tally: Tally,
) -> Result<(Vec<Vec<String>>, Released), AnalyticsError> {
    tokio::task::spawn_blocking(move || threshold::release_all(&plan, &tally))
        .await
        .map_err(|e| AnalyticsError::Internal(e.to_string()))?
        .map_err(|e| AnalyticsError::Internal(e.to_string()))
}

async fn release_blocking(
    plan: Plan,
    tally: Tally,
    quantile_rows: Vec<Vec<i64>>,
    cells: Vec<Vec<String>>,
) -> Result<Released, AnalyticsError> {
    tokio::task::spawn_blocking(move || release(&plan, &tally, &quantile_rows, &cells))
        .await
        .map_err(|e| AnalyticsError::Internal(e.to_string()))?
        .map_err(|e| AnalyticsError::Internal(e.to_string()))
}

/// Applies each release's OpenDP measurement to the exact tally.
pub(super) fn release(
    plan: &Plan,
    tally: &Tally,
    quantile_rows: &[Vec<i64>],
    cells: &[Vec<String>],
) -> Result<Released, PlanError> {
    let mut quantiles = quantile_rows.iter();
    let mut out = Vec::new();
    for releases in &plan.per_aggregate {
        let mut per_release = Vec::new();
        for r in releases {
            let values = match &r.statistic {
                Statistic::Count => exact(tally, cells, None),
                Statistic::Sum { column, .. } => exact(tally, cells, Some(column)),
                Statistic::Quantile { bounds, q, .. } => {
                    let rows = quantiles.next().map(Vec::as_slice).unwrap_or_default();
                    per_release.push(vec![mechanism::noisy_quantile(rows, *bounds, *q, r.scale)?]);
                    continue;
                }
            };
            per_release.push(mechanism::noisy(&values, r.scale)?);
        }
        out.push(per_release);
    }
    Ok(out)
}

/// The exact counts (or sums of `column`) per cell in release order; empty cells are 0.
pub(super) fn exact(tally: &Tally, cells: &[Vec<String>], column: Option<&String>) -> Vec<i64> {
    let index = column.and_then(|c| tally.sum_columns.iter().position(|s| s == c));
    cells
        .iter()
        .map(|cell| match (tally.cells.get(cell), index) {
            (None, _) => 0,
            (Some((count, _)), None) => *count,
            (Some((_, sums)), Some(i)) => sums.get(i).copied().unwrap_or(0),
        })
        .collect()
}
