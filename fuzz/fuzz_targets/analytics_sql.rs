//! The analytics SQL parser and planner on the demo's datasets: any text is a checked query
//! or a refusal, never a panic; a plan never spends more than the epsilon asked; the
//! statement pushed down to the source database carries no literal the analyst wrote (they
//! travel as bind parameters) and as many parameters as it binds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use privgate::fuzzing::{demo_datasets, plan_query};

const EPSILON: f64 = 0.5;

fuzz_target!(|sql: &str| {
    for dataset in demo_datasets() {
        let Ok(planned) = plan_query(sql, dataset, EPSILON) else {
            continue;
        };
        if let Some(spent) = planned.epsilon {
            assert!(
                spent > 0.0 && spent <= EPSILON * (1.0 + 1e-9),
                "plan spends {spent}"
            );
        }
        let tally = &planned.tally;
        // Single quotes appear only in the fixed ESCAPE clause of the consent filter.
        assert!(
            !tally.sql.contains('\''),
            "a string literal in pushed-down SQL"
        );
        let placeholders = (1..=tally.binds.len() + 1)
            .filter(|n| tally.sql.contains(&format!("${n}")))
            .count();
        assert_eq!(
            placeholders,
            tally.binds.len(),
            "binds and placeholders differ"
        );
    }
});
