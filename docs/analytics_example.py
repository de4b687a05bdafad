"""An analyst's session with privgate's Python client, against `privgate demo`.

    privgate demo                      # in another terminal (or: privgate demo --no-fhe)
    pip install ./clients/python
    python3 docs/analytics_example.py --url https://localhost:8443/analytics/v1 \
        --ca demo-data/certs/ca.pem --token-file demo-data/tokens/analyst.jwt

It lists the datasets the analyst may ask about and the budget left (neither spends
anything), prices a query with a dry run, asks it, and shows the DataFrame: estimates with
their 95% intervals, the spend and the budget left in df.attrs. See docs/analytics.md.
"""

from __future__ import annotations

import argparse

from privgate_client import BudgetExhausted, Client, QueryNotAllowed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="https://localhost:8443/analytics/v1")
    parser.add_argument("--ca", default="demo-data/certs/ca.pem")
    parser.add_argument("--token-file", default="demo-data/tokens/analyst.jwt")
    args = parser.parse_args()
    with open(args.token_file) as f:
        token = f.read().strip()

    with Client(args.url, token=token, ca=args.ca) as c:
        # What may be asked: columns, bounds, categories, contribution bounds, budgets.
        for d in c.datasets():
            columns = ", ".join(f"{col['name']} ({col['type']})" for col in d["columns"])
            print(f"{d['name']}: one {d['privacy_unit']} contributes at most "
                  f"{d['max_rows_per_unit']} rows; columns {columns}")
        for b in c.budget():
            print(f"budget on {b['dataset']}: epsilon {b['epsilon_left']:.3f} left "
                  f"(all analysts: {b['global_epsilon_left']:.3f}); refreshes {b['refreshes_at']}")

        sql = "SELECT kind, COUNT(*), AVG(balance_minor) FROM accounts GROUP BY kind"
        cost = c.query("accounts", sql, epsilon=0.2, dry_run=True)
        print(f"\ndry run: epsilon {cost.attrs['epsilon_cost']} for\n{cost}\n")

        df = c.query("accounts", sql, epsilon=0.2)
        print(df.to_string(index=False))
        print(f"\nepsilon spent {df.attrs['epsilon_spent']} (cached: {df.attrs['cached']}); "
              f"left {df.attrs['budget']['epsilon_left']:.3f}")

        try:
            c.query("accounts", "SELECT customer_id FROM accounts", epsilon=0.1)
        except QueryNotAllowed as refused:
            print(f"\nrefused ({refused.code}): {refused.message[:80]}...")
        try:
            c.query("accounts", "SELECT COUNT(*) FROM accounts WHERE kind = 'savings'", epsilon=100)
        except BudgetExhausted as spent:
            print(f"refused ({spent.code}), retry in {spent.retry_after} s")


if __name__ == "__main__":
    main()
