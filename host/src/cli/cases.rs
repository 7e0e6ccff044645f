//! `mcp-registry test PLUGIN --cases FILE`: a plugin's own test suite, reported like a test
//! runner, exit code 1 if any case failed, so a plugin's CI can run it.
//!
//! Each case gives an input and what the run must give back: an `output` (equal as JSON) or
//! an `error` (a text the failure must contain). It runs against the registry's live servers,
//! or with `replay` against a recording (`run --record`) and no server at all:
//!
//! ```json
//! {"cases": [
//!   {"name": "counts", "input": {"n": 2}, "output": {"counters": ["1", "1"]}},
//!   {"name": "offline", "input": {"n": 3}, "replay": "counts.jsonl", "output": {...}},
//!   {"name": "refuses", "input": {"n": 9}, "error": "too many"}
//! ]}
//! ```
//!
//! `replay` is relative to the cases file. The plugin is granted what it requests, as far as
//! the registry (or the recording) has it, plus what the policy flags grant.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use serde_json::Value;

use super::commands::grant_requested;
use super::one_shot;
use super::policy_args::PolicyArgs;
use super::replay;
use crate::config::Registry;
use crate::plugin::{default_cache_dir, PluginError, PluginHost};

/// What a case must give back.
enum Expected {
    Output(Value),
    Error(String),
}

/// One case of a cases file.
struct Case {
    name: String,
    input: Value,
    expected: Expected,
    replay: Option<PathBuf>,
}

/// Reads a cases file; a mistake names the file, the case and the field.
fn read_cases(file: &Path) -> anyhow::Result<Vec<Case>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the cases file {}", file.display()))?;
    let doc: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", file.display()))?;
    let Some(cases) = doc.get("cases").and_then(Value::as_array) else {
        bail!("{}: expected {{\"cases\": [...]}}", file.display());
    };
    let base = file.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let name = case["name"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or(format!("case {}", i + 1));
        let at = |field: &str| format!("{}: case \"{name}\": field \"{field}\"", file.display());
        let expected = match (case.get("output"), case.get("error")) {
            (Some(output), None) => Expected::Output(output.clone()),
            (None, Some(Value::String(error))) => Expected::Error(error.clone()),
            (None, Some(_)) => bail!("{}: expected a text", at("error")),
            _ => bail!(
                "{}: give exactly one of \"output\" and \"error\"",
                at("output")
            ),
        };
        let replay = match case.get("replay") {
            None => None,
            Some(Value::String(r)) => Some(base.join(r)),
            Some(_) => bail!("{}: expected the path of a recording", at("replay")),
        };
        let input = case
            .get("input")
            .cloned()
            .unwrap_or(Value::Object(Default::default()));
        out.push(Case {
            name,
            input,
            expected,
            replay,
        });
    }
    Ok(out)
}

/// Where two JSON values first differ, as a path (`$.counters[2]`) with both sides.
fn first_difference(expected: &Value, actual: &Value, at: &str) -> Option<String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let keys: std::collections::BTreeSet<&String> = e.keys().chain(a.keys()).collect();
            keys.into_iter().find_map(|k| {
                let null = Value::Null;
                let path = format!("{at}.{k}");
                match (e.get(k), a.get(k)) {
                    (Some(_), None) => Some(format!("at {path}: missing from the output")),
                    (None, Some(v)) => Some(format!("at {path}: not expected, got {v}")),
                    (ev, av) => first_difference(ev.unwrap_or(&null), av.unwrap_or(&null), &path),
                }
            })
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => e
            .iter()
            .zip(a)
            .enumerate()
            .find_map(|(i, (ev, av))| first_difference(ev, av, &format!("{at}[{i}]"))),
        (e, a) if e == a => None,
        (e, a) => Some(format!("at {at}: expected {e}, got {a}")),
    }
}

/// Runs one case; `Err` says why it failed.
async fn run_case(
    path: &Path,
    plugin: &Path,
    case: &Case,
    limits: &PolicyArgs,
) -> anyhow::Result<Result<(), String>> {
    let registry = match &case.replay {
        Some(file) => replay::registry(file, &replay::read(file)?)?,
        None => Registry::load_or_default(path)?,
    };
    let host = PluginHost::new(one_shot(registry.clone()), default_cache_dir())?;
    let _upstreams = host.aggregator().shutdown_guard();
    let loaded = super::commands::load_plugin(&host, plugin, &limits.trusted_keys()?).await?;
    let requires = host.describe(&loaded).await?.requires;
    let mut policy = limits.to_policy(&registry, path)?;
    grant_requested(&requires, &registry, path, &mut policy);
    let outcome = host.run(&loaded, &case.input.to_string(), &policy).await;
    Ok(match (&case.expected, outcome) {
        (Expected::Output(want), Ok(text)) => {
            let got = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
            match first_difference(want, &got, "$") {
                None => Ok(()),
                Some(difference) => Err(format!(
                    "{difference}\nexpected: {}\n  actual: {}",
                    want, got
                )),
            }
        }
        (Expected::Error(want), Err(PluginError::Failed { message, .. })) => {
            if message.contains(want.as_str()) {
                Ok(())
            } else {
                Err(format!(
                    "expected an error containing {want:?}, got: {message}"
                ))
            }
        }
        (Expected::Error(want), Ok(text)) => Err(format!(
            "expected an error containing {want:?}, got the output: {text}"
        )),
        (Expected::Output(_), Err(PluginError::Failed { message, .. })) => {
            Err(format!("the plugin failed: {message}"))
        }
        (_, Err(e)) => return Err(e.into()),
    })
}

/// `test PLUGIN --cases FILE [POLICY FLAGS]`.
pub(super) async fn run_cases(
    path: &Path,
    plugin: &Path,
    cases_file: &Path,
    limits: &PolicyArgs,
) -> anyhow::Result<ExitCode> {
    let cases = read_cases(cases_file)?;
    println!(
        "running {} case(s) of {}",
        cases.len(),
        cases_file.display()
    );
    let mut failures = Vec::new();
    for case in &cases {
        match run_case(path, plugin, case, limits).await? {
            Ok(()) => println!("test {} ... ok", case.name),
            Err(why) => {
                println!("test {} ... FAILED", case.name);
                failures.push((case.name.as_str(), why));
            }
        }
    }
    for (name, why) in &failures {
        println!("\n---- {name} ----\n{why}");
    }
    let verdict = if failures.is_empty() { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {} passed; {} failed",
        cases.len() - failures.len(),
        failures.len()
    );
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
