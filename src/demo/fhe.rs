//! The demo's encrypted sums: the `[fhe]` section and route, the key set made on the first
//! run, and the steps the demo prints (an aggregate, three branches of three organisations
//! contributing, a release refused below the threshold, then the exact total).

use std::path::Path;

/// The demo config's FHE part (appended to privgate.toml).
pub(crate) const CONFIG: &str = r#"
# Encrypted sums (docs/fhe.md): the key set is made in fhe/ on the first run; contributors
# count toward a release by organisation (the `org` claim of their tokens).
[fhe]
dir = "fhe"

[[route]]
name = "fhe"
path_prefix = "/fhe/v1"
serve = "fhe"
"#;

/// Makes the FHE key set on the first run (about 20 s on 2 cores); later runs reuse it. A
/// key set this build cannot use (made by an older release) is moved to `fhe.old` and
/// made again: demo data is disposable.
pub(crate) async fn setup(dir: &Path, config_path: &Path) -> anyhow::Result<()> {
    let keys = dir.join("fhe");
    if keys.join("keyset.json").exists() {
        match crate::analytics::fhe::keyset::manifest(&keys) {
            Ok(_) => return Ok(()),
            Err(e) => {
                println!("the demo's FHE key set cannot be used ({e}); making a new one");
                let old = dir.join("fhe.old");
                if old.exists() {
                    std::fs::remove_dir_all(&old)?;
                }
                std::fs::rename(&keys, &old)?;
            }
        }
    }
    println!(
        "making the FHE key set in {} (first run only) ...",
        dir.join("fhe").display()
    );
    println!(
        "{}",
        crate::analytics::fhe::configured::make(config_path).await?
    );
    Ok(())
}

/// The printed steps, given the demo directory, the gateway's base URL, curl with the
/// demo CA, and the privgate executable.
pub(crate) fn instructions(dir: &str, base: &str, curl: &str, exe: &str) -> String {
    let bearer =
        |name: &str| format!("-H \"authorization: Bearer $(cat {dir}/tokens/{name}.jwt)\"");
    let create = |release: &str| {
        format!(
            "$({curl} {} -H 'content-type: application/json' -X POST {base}/fhe/v1/aggregates \\\n    \
             -d '{{\"name\":\"branch exposures\",\"bits\":16,\"max_contributors\":100,\"min_organisations\":3,\"open_for\":\"1day\",\"release\":{release}}}' \\\n    \
             | sed -E 's/.*\"id\":\"([^\"]+)\".*/\\1/')",
            bearer("reporting-analyst")
        )
    };
    let contribute = |(stem, value): (&str, u32)| {
        format!(
            "  {exe} fhe contribute --gateway {base}/fhe/v1 --ca {dir}/certs/ca.pem \\\n    \
             --token-file {dir}/tokens/{stem}.jwt --aggregate $AGG --value {value}\n"
        )
    };
    let names: Vec<&str> = super::issuer::BRANCHES
        .iter()
        .map(|(stem, _, _)| *stem)
        .collect();
    let officer = bearer("release-officer");
    format!(
        r#"  # encrypted sums (docs/fhe.md): an analyst creates an aggregate (16-bit amounts, at
  # least 3 distinct organisations); branches encrypt and prove their amounts on their side
  # (the command prints each contribution's size) and the gateway adds them encrypted
  AGG={exact}
{c1}{c2}  # two organisations so far: the release officer is refused (threshold_not_met)
  {curl} {officer} -X POST {base}/fhe/v1/aggregates/$AGG/release
{c3}  # three organisations: only the total is decrypted (1200 + 3400 + 560 = 5160)
  {curl} {officer} -X POST {base}/fhe/v1/aggregates/$AGG/release
  # status shows counts, never values
  {curl} {analyst} {base}/fhe/v1/aggregates/$AGG
  # a DP-noised release: OpenDP noise on the total, charged to the aggregate's own budget.
  # The privacy unit is a contributor, so the noise is on the scale of one capped
  # contribution (here cap 5000, epsilon 1): with three contributors it swamps the total;
  # DP releases are for aggregates with many contributors
  DP={dp}
  for b in {branches}; do {exe} fhe contribute --gateway {base}/fhe/v1 --ca {dir}/certs/ca.pem \
    --token-file {dir}/tokens/$b.jwt --aggregate $DP --value 1000; done
  {curl} {officer} -X POST {base}/fhe/v1/aggregates/$DP/release
"#,
        exact = create(r#"{"mode":"exact"}"#),
        dp = create(r#"{"mode":"dp","epsilon":1.0,"budget":3.0},"cap":5000"#),
        c1 = contribute((names[0], 1200)),
        c2 = contribute((names[1], 3400)),
        c3 = contribute((names[2], 560)),
        branches = names.join(" "),
        analyst = bearer("reporting-analyst"),
    )
}
