//! The FHE tables' invariants on both engines (no TFHE here: ciphertexts are opaque text
//! to the store).

use crate::store::{postgres_store, sqlite_store};
use privgate::store::{now_ms, AggregateRow, ContributionWrite, Store};

crate::store::engine_suite!(
    a_contributor_has_one_contribution_and_keeps_its_slot,
    nonces_are_used_once_and_closed_aggregates_take_nothing,
    a_release_closes_once_and_only_at_the_totalled_revisions,
    the_privacy_budget_is_never_overspent_by_concurrent_releases,
    contributions_stored_without_an_organisation_count_toward_none,
);

fn aggregate(id: &str, max_contributors: i64, batch_size: i64) -> AggregateRow {
    AggregateRow {
        id: id.into(),
        name: "exposures".into(),
        bits: 16,
        cap: None,
        max_contributors,
        batch_size,
        min_organisations: 3,
        deadline: now_ms() + 60_000,
        release_mode: "dp".into(),
        epsilon_micro: Some(1_000_000),
        budget_micro: Some(3_000_000),
        spent_micro: 0,
        created_by: "User:ana".into(),
        created_at: now_ms(),
        state: "open".into(),
        released_at: None,
    }
}

async fn put(
    store: &Store,
    agg: &str,
    who: &str,
    org: &str,
    nonce: &str,
    ct: &str,
) -> ContributionWrite {
    store
        .put_contribution(agg, who, org, nonce, ct, now_ms())
        .await
        .unwrap()
}

/// The sum of an aggregate's batch revisions, as a release totals it.
async fn revisions(store: &Store, agg: &str) -> i64 {
    store
        .batches(agg)
        .await
        .unwrap()
        .iter()
        .map(|b| b.revision)
        .sum()
}

mod suite {
    use super::*;

    pub async fn a_contributor_has_one_contribution_and_keeps_its_slot(store: Store, _url: String) {
        store
            .insert_aggregate(&aggregate("a1", 10, 2))
            .await
            .unwrap();
        let row = store.aggregate("a1").await.unwrap().unwrap();
        assert_eq!((row.batch_size, row.state.as_str()), (2, "open"));
        assert_eq!(
            put(&store, "a1", "Service:x", "bank-a", "n-1", "c1").await,
            ContributionWrite::Stored {
                slot: 0,
                replaced: false
            }
        );
        assert_eq!(
            put(&store, "a1", "Service:y", "bank-a", "n-2", "c2").await,
            ContributionWrite::Stored {
                slot: 1,
                replaced: false
            }
        );
        assert_eq!(
            put(&store, "a1", "Service:z", "bank-b", "n-3", "c3").await,
            ContributionWrite::Stored {
                slot: 2,
                replaced: false
            }
        );
        // One organisation behind two services counts once.
        assert_eq!(store.contribution_counts("a1").await.unwrap(), (3, 2));
        // A replacement keeps the slot (and so the batch), and marks only that batch.
        let before = store.batches("a1").await.unwrap();
        assert_eq!(
            put(&store, "a1", "Service:x", "bank-a", "n-4", "c1-new").await,
            ContributionWrite::Stored {
                slot: 0,
                replaced: true
            }
        );
        let after = store.batches("a1").await.unwrap();
        assert_eq!(after[0].revision, before[0].revision + 1);
        assert_eq!(after[1].revision, before[1].revision);
        let rows = store.batch_contributions("a1", 0, 2).await.unwrap();
        assert_eq!(
            rows.iter()
                .map(|r| r.ciphertext.as_str())
                .collect::<Vec<_>>(),
            ["c1-new", "c2"]
        );
        assert_eq!(store.contribution_counts("a1").await.unwrap(), (3, 2));
        // Concurrent first contributions take distinct slots, up to the maximum.
        let mut tasks = Vec::new();
        for i in 0..10 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .put_contribution(
                        "a1",
                        &format!("Service:p{i}"),
                        &format!("org-{i}"),
                        &format!("np-{i}"),
                        "c",
                        now_ms(),
                    )
                    .await
                    .unwrap()
            }));
        }
        let mut slots = Vec::new();
        let mut full = 0;
        for t in tasks {
            match t.await.unwrap() {
                ContributionWrite::Stored {
                    slot,
                    replaced: false,
                } => slots.push(slot),
                ContributionWrite::Full => full += 1,
                other => panic!("{other:?}"),
            }
        }
        slots.sort();
        assert_eq!(slots, (3..10).collect::<Vec<_>>());
        assert_eq!(full, 3);
    }

    pub async fn nonces_are_used_once_and_closed_aggregates_take_nothing(
        store: Store,
        _url: String,
    ) {
        store
            .insert_aggregate(&aggregate("a2", 10, 4))
            .await
            .unwrap();
        assert!(matches!(
            put(&store, "a2", "Service:x", "o", "n-1", "c").await,
            ContributionWrite::Stored { .. }
        ));
        assert_eq!(
            put(&store, "a2", "Service:y", "o", "n-1", "c").await,
            ContributionWrite::NonceReused
        );
        assert_eq!(
            put(&store, "nope", "Service:y", "o", "n-9", "c").await,
            ContributionWrite::NotFound
        );
        let mut late = aggregate("a3", 10, 4);
        late.deadline = now_ms() - 1;
        store.insert_aggregate(&late).await.unwrap();
        assert_eq!(
            put(&store, "a3", "Service:x", "o", "n-1", "c").await,
            ContributionWrite::Closed
        );
        let totalled = revisions(&store, "a2").await;
        assert!(store
            .close_aggregate_at("a2", now_ms(), totalled)
            .await
            .unwrap());
        assert_eq!(
            put(&store, "a2", "Service:z", "o", "n-2", "c").await,
            ContributionWrite::Closed
        );
        assert_eq!(store.contribution_counts("a2").await.unwrap(), (1, 1));
    }

    pub async fn a_release_closes_once_and_only_at_the_totalled_revisions(
        store: Store,
        _url: String,
    ) {
        store
            .insert_aggregate(&aggregate("a4", 10, 2))
            .await
            .unwrap();
        put(&store, "a4", "Service:x", "o1", "n-1", "c").await;
        put(&store, "a4", "Service:y", "o2", "n-2", "c").await;
        let batch = &store.batches("a4").await.unwrap()[0];
        assert!(batch.partial.is_none());
        // A fold from an old revision is not stored; from the current one it is.
        assert!(!store
            .store_partial("a4", 0, batch.revision - 1, "p-old")
            .await
            .unwrap());
        assert!(store
            .store_partial("a4", 0, batch.revision, "p")
            .await
            .unwrap());
        let stale = revisions(&store, "a4").await;
        put(&store, "a4", "Service:x", "o1", "n-3", "c2").await;
        // The total computed before the replacement no longer closes the aggregate.
        assert!(!store
            .close_aggregate_at("a4", now_ms(), stale)
            .await
            .unwrap());
        let current = revisions(&store, "a4").await;
        let (one, two) = tokio::join!(
            store.close_aggregate_at("a4", now_ms(), current),
            store.close_aggregate_at("a4", now_ms(), current)
        );
        assert!(one.unwrap() ^ two.unwrap(), "exactly one release closes it");
        assert_eq!(
            store.aggregate("a4").await.unwrap().unwrap().state,
            "released"
        );
    }

    pub async fn contributions_stored_without_an_organisation_count_toward_none(
        store: Store,
        _url: String,
    ) {
        store
            .insert_aggregate(&aggregate("a6", 10, 2))
            .await
            .unwrap();
        // Rows from before contributions needed an organisation carry the contributor
        // itself: one party's many principals must not count as many organisations.
        for (i, who) in ["Service:apikey:p", "Service:oauth:p", "User:p"]
            .iter()
            .enumerate()
        {
            put(&store, "a6", who, who, &format!("n-{i}"), "c").await;
        }
        assert_eq!(store.contribution_counts("a6").await.unwrap(), (3, 0));
        put(&store, "a6", "Service:client:x", "bank-x", "n-7", "c").await;
        put(&store, "a6", "Service:client:y", "bank-x", "n-8", "c").await;
        put(&store, "a6", "Service:client:z", "bank-z", "n-9", "c").await;
        assert_eq!(store.contribution_counts("a6").await.unwrap(), (6, 2));
    }

    pub async fn the_privacy_budget_is_never_overspent_by_concurrent_releases(
        store: Store,
        _url: String,
    ) {
        store
            .insert_aggregate(&aggregate("a5", 10, 2))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.spend_aggregate_budget("a5", 1_000_000).await.unwrap()
            }));
        }
        let mut spent = 0;
        for t in tasks {
            spent += t.await.unwrap() as i64;
        }
        assert_eq!(spent, 3);
        assert_eq!(
            store.aggregate("a5").await.unwrap().unwrap().spent_micro,
            3_000_000
        );
    }
}
