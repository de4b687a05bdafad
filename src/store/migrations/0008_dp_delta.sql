-- Delta budgets of differentially private analytics (GROUP BY keys found in the data are
-- released above a DP threshold, which costs delta as well as epsilon). Delta is kept in
-- atto-delta (1e-18) integers, exact on both engines, and debited by the same conditional
-- UPDATE as epsilon (`spent + cost <= limit` for both, one statement per scope).
ALTER TABLE dp_budget ADD COLUMN spent_delta_atto BIGINT NOT NULL DEFAULT 0;
ALTER TABLE dp_spends ADD COLUMN delta_cost_atto BIGINT NOT NULL DEFAULT 0;
