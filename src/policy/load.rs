//! Loading a policy directory: schema, field classes and every `*.cedar` file, validated in
//! strict mode. A set with any problem is never built, so it can never be activated.

use super::snapshot::PolicySnapshot;
use super::PolicyEngine;
use crate::config::{ConfigError, Problem};
use cedar_policy::{PolicyId, PolicySet, Schema, ValidationMode, Validator};
use miette::Diagnostic;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// `fields.toml`: the field classes and the consent permission covering each.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldsFile {
    class: BTreeMap<String, FieldClassSpec>,
}

/// Only the consent permission: field protection reads (and checks every key of) the rest.
#[derive(Deserialize)]
struct FieldClassSpec {
    permission: String,
}

/// A policy source file and its text.
struct Source<'a> {
    path: PathBuf,
    text: &'a str,
}

fn problem(path: &Path, message: impl Into<String>) -> Problem {
    Problem {
        file: path.to_path_buf(),
        at: None,
        message: message.into(),
    }
}

/// A file of the set, or a problem naming it.
fn text<'a>(set: &'a PolicySnapshot, name: &str, problems: &mut Vec<Problem>) -> Option<&'a str> {
    set.text(name)
        .map_err(|e| problems.push(problem(&set.dir().join(name), e)))
        .ok()
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// "line N: message" from a cedar diagnostic's first label.
fn located(text: &str, diagnostic: &dyn Diagnostic, message: String) -> String {
    match diagnostic.labels().and_then(|mut labels| labels.next()) {
        Some(label) => format!("line {}: {message}", line_of(text, label.offset())),
        None => message,
    }
}

pub(super) fn load(set: &PolicySnapshot) -> Result<PolicyEngine, ConfigError> {
    let dir = set.dir();
    let mut problems = Vec::new();
    let schema_path = dir.join("schema.cedarschema");
    let fields_path = dir.join("fields.toml");
    let schema_text = text(set, "schema.cedarschema", &mut problems);
    let fields_text = text(set, "fields.toml", &mut problems);

    let schema = schema_text
        .as_ref()
        .and_then(|text| match Schema::from_cedarschema_str(text) {
            Ok((schema, _warnings)) => Some(schema),
            Err(e) => {
                problems.push(problem(
                    &schema_path,
                    located(text, &e, format!("invalid schema: {e}")),
                ));
                None
            }
        });
    let field_classes =
        fields_text
            .as_ref()
            .and_then(|text| match toml::from_str::<FieldsFile>(text) {
                Ok(f) => Some(
                    f.class
                        .into_iter()
                        .map(|(name, spec)| (name, spec.permission))
                        .collect::<BTreeMap<_, _>>(),
                ),
                Err(e) => {
                    problems.push(problem(
                        &fields_path,
                        format!("invalid TOML: {}", e.to_string().trim()),
                    ));
                    None
                }
            });

    let sources: Vec<Source> = set
        .top_level("cedar")
        .into_iter()
        .filter_map(|name| {
            Some(Source {
                path: dir.join(name),
                text: text(set, name, &mut problems)?,
            })
        })
        .collect();
    if sources.is_empty() && problems.is_empty() {
        problems.push(problem(dir, "no *.cedar policy files"));
    }

    let (policies, origin, reasons) = collect_policies(&sources, &mut problems);
    if let Some(schema) = &schema {
        let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        for error in result.validation_errors() {
            let (path, text) = origin
                .get(error.policy_id())
                .map(|i| (&sources[*i].path, sources[*i].text))
                .unzip();
            let message = format!("policy `{}`: {error}", error.policy_id());
            match (path, text) {
                (Some(path), Some(text)) => {
                    problems.push(problem(path, located(text, error, message)))
                }
                _ => problems.push(problem(dir, message)),
            }
        }
    }
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    let (Some(schema), Some(field_classes), Some(schema_text), Some(fields_text)) =
        (schema, field_classes, schema_text, fields_text)
    else {
        return Err(ConfigError::one(dir, "policy set incomplete"));
    };
    // routes.toml (field rules) is part of what a decision's views mean: hash it too.
    let routes_text = set
        .optional_text(crate::protect::ROUTES_FILE)
        .and_then(Result::ok);
    let hash = content_hash(schema_text, fields_text, routes_text, &sources);
    let files = origin
        .iter()
        .map(|(id, index)| {
            let file = sources[*index].path.file_name().unwrap_or_default();
            (id.to_string(), file.to_string_lossy().into_owned())
        })
        .collect();
    let mut engine = PolicyEngine::new(schema, policies, reasons, field_classes, hash)
        .map_err(|e| ConfigError::one(dir, e.to_string()))?;
    engine.files = files;
    engine.cases = super::cases::of_snapshot(set);
    Ok(engine)
}

type Collected = (PolicySet, HashMap<PolicyId, usize>, HashMap<String, String>);

/// Parses each file, re-ids every policy by its `@id`, and checks the annotation rules.
fn collect_policies(sources: &[Source], problems: &mut Vec<Problem>) -> Collected {
    let mut set = PolicySet::new();
    let mut origin = HashMap::new();
    let mut reasons = HashMap::new();
    for (index, source) in sources.iter().enumerate() {
        let parsed: PolicySet = match source.text.parse() {
            Ok(parsed) => parsed,
            Err(e) => {
                let e: cedar_policy::ParseErrors = e;
                problems.push(problem(
                    &source.path,
                    located(source.text, &e, format!("parse error: {e}")),
                ));
                continue;
            }
        };
        for policy in parsed.policies() {
            let Some(id) = policy.annotation("id").filter(|id| !id.is_empty()) else {
                let message = "every policy needs an @id(\"...\") annotation".to_owned();
                problems.push(problem(
                    &source.path,
                    located_policy(source.text, policy, message),
                ));
                continue;
            };
            let forbid = policy.effect() == cedar_policy::Effect::Forbid;
            match policy.annotation("reason") {
                Some(reason) if forbid && !reason.is_empty() => {
                    reasons.insert(id.to_owned(), reason.to_owned());
                }
                _ if forbid => problems.push(problem(
                    &source.path,
                    located_policy(
                        source.text,
                        policy,
                        format!("forbid policy `{id}` needs a @reason(\"...\") annotation"),
                    ),
                )),
                _ => {}
            }
            let policy_id = PolicyId::new(id);
            if let Some(first) = origin.get(&policy_id) {
                let first: &Source = &sources[*first];
                problems.push(problem(
                    &source.path,
                    format!("@id `{id}` is also used in {}", first.path.display()),
                ));
                continue;
            }
            if set.add(policy.new_id(policy_id.clone())).is_ok() {
                origin.insert(policy_id, index);
            }
        }
    }
    (set, origin, reasons)
}

fn located_policy(text: &str, policy: &cedar_policy::Policy, message: String) -> String {
    // The policy's own text locates it in the file.
    match text
        .find(&policy.to_string())
        .or_else(|| policy.annotation("id").and_then(|id| text.find(id)))
    {
        Some(offset) => format!("line {}: {message}", line_of(text, offset)),
        None => message,
    }
}

/// SHA-256 over every file the decision depends on, in a fixed order.
fn content_hash(
    schema: &str,
    fields: &str,
    routes: Option<&str>,
    sources: &[Source<'_>],
) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut part = |name: &str, text: &str| {
        for chunk in [name.as_bytes(), text.as_bytes()] {
            ctx.update(&(chunk.len() as u64).to_be_bytes());
            ctx.update(chunk);
        }
    };
    part("schema.cedarschema", schema);
    part("fields.toml", fields);
    if let Some(routes) = routes {
        part(crate::protect::ROUTES_FILE, routes);
    }
    for s in sources {
        let name = s
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        part(&name, s.text);
    }
    crate::audit::hex(ctx.finish().as_ref())
}
