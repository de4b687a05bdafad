//! The demo's early warning: a `[risk]` section whose bulk-reading threshold is low enough
//! to reach by hand, and the steps the demo prints (one token reads many customers, the
//! indicator climbs, the gateway asks for a second factor past the threshold).

/// Distinct customers in 5 minutes above which the demo asks for a second factor.
pub(crate) const THRESHOLD: u32 = 25;

/// The demo config's risk part (appended to privgate.toml).
pub(crate) fn config() -> String {
    format!(
        r#"
# Early warning (docs/risk.md): live indicators per caller over sliding windows, shared by
# replicas through the store, in the policy context (policies/risk.cedar), and thresholds.
# Past {THRESHOLD} distinct customers in 5 minutes, a caller must show a second factor.
[risk]
windows = ["5m", "1h", "24h"]
usual_hours = {{ from = 7, to = 20 }}
flush_interval = "1s"

[[risk.threshold]]
name = "bulk-reading"
indicator = "distinct_subjects"
window = "5m"
above = {THRESHOLD}
response = "step_up"
step_up = {{ amr_any = ["otp", "hwk", "mfa"], max_age = "1h" }}
"#
    )
}

/// The printed steps: bash, curl and this binary, runnable as printed.
pub(crate) fn instructions(dir: &str, base: &str, curl: &str, exe: &str, config: &str) -> String {
    let last = THRESHOLD + 5;
    format!(
        r#"  # early warning (docs/risk.md): one token reads customers 1000-{end} quickly; each read is
  # counted (distinct customers, clear reveals, refusals, ...) and past {THRESHOLD} distinct
  # customers in 5 minutes the gateway answers with an RFC 9470 step-up challenge (401)
  for c in $(seq 1000 {end}); do {curl} -o /dev/null -w "customer $c: %{{http_code}}\n" \
    -H "authorization: Bearer $(cat {dir}/tokens/password-only.jwt)" {base}/customers/$c; done
  # the indicators as every replica sees them (written to the store each second)
  sleep 2; {exe} risk show --config {config} --principal User:ana.analyst
  {curl} -i -H "authorization: Bearer $(cat {dir}/tokens/password-only.jwt)" {base}/customers/1000
  # the same analyst signed in with a second factor reads on
  {curl} -o /dev/null -w "with a second factor: %{{http_code}}\n" \
    -H "authorization: Bearer $(cat {dir}/tokens/with-mfa.jwt)" {base}/customers/1000
"#,
        end = 999 + last,
    )
}
