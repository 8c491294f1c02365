//! The README cannot drift: every setting its Configuration table names is a key of the settings, every command
//! its Command line block shows is one the binary takes, and every path its API table lists is served.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure fails the test"
)]

use std::collections::BTreeSet;
use std::process::Command;

const README: &str = include_str!("../../../README.md");
const BINARY: &str = env!("CARGO_BIN_EXE_conductor");

/// The lines of the section under `heading`, up to the next heading of the same level.
fn section(heading: &str) -> Vec<&'static str> {
    README
        .lines()
        .skip_while(|line| *line != heading)
        .skip(1)
        .take_while(|line| !line.starts_with("## "))
        .collect()
}

/// The backticked spans of a line.
fn backticked(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// Every key path of a JSON value (`a`, `a.b`, ...).
fn key_paths(value: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let serde_json::Value::Object(map) = value {
        for (key, inner) in map {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            out.insert(path.clone());
            key_paths(inner, &path, out);
        }
    }
}

#[test]
fn every_setting_the_readme_names_exists() {
    let settings = serde_json::to_value(conductor::Settings::default()).unwrap();
    let mut known = BTreeSet::new();
    key_paths(&settings, "", &mut known);
    let mut named = Vec::new();
    for line in section("## Configuration")
        .iter()
        .filter(|l| l.starts_with("| `"))
    {
        // The first column names the settings; the others give defaults and examples.
        let first = line.split(" | ").next().unwrap_or_default();
        for span in backticked(first) {
            // `a.{b, c}` names a.b and a.c; `auth.providers.<name>.x` a provider's field.
            let span = span.replace(".<name>", ".google");
            if let Some((stem, rest)) = span.split_once(".{") {
                for leaf in rest.trim_end_matches('}').split(',') {
                    named.push(format!("{stem}.{}", leaf.trim()));
                }
            } else if span.contains('.') && !span.contains(' ') && !span.starts_with("OS_") {
                named.push(span);
            }
        }
    }
    assert!(named.len() > 30, "the table was read: {named:?}");
    let providers_fields = [
        "issuer_url",
        "client_id",
        "client_secret",
        "client_secret_file",
        "scopes",
        "display_name",
    ];
    let missing: Vec<&String> = named
        .iter()
        .filter(|key| {
            let provider_field = key
                .strip_prefix("auth.providers.google.")
                .is_some_and(|field| providers_fields.contains(&field));
            !known.contains(key.as_str()) && !provider_field && key.as_str() != "auth.providers.google"
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the README names settings that do not exist: {missing:?}"
    );
}

#[test]
fn every_command_the_readme_shows_is_taken() {
    let lines = section("## Command line");
    let commands: BTreeSet<Vec<&str>> = lines
        .iter()
        .filter_map(|line| line.strip_prefix("conductor "))
        // The description starts after a run of spaces.
        .map(|rest| rest.split("  ").next().unwrap_or_default())
        .map(|rest| {
            rest.split_whitespace()
                .take_while(|word| {
                    word.chars()
                        .all(|c| c.is_ascii_lowercase() || c == '|' || c == '-')
                })
                .filter(|word| !word.starts_with('-'))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(commands.len() > 10, "the block was read: {commands:?}");
    for command in &commands {
        // `keys list|revoke` names two commands; `[serve]` the default.
        let mut expanded: Vec<Vec<String>> = vec![Vec::new()];
        for word in command {
            expanded = expanded
                .into_iter()
                .flat_map(|done| {
                    word.split('|').map(move |alternative| {
                        let mut next = done.clone();
                        next.push(alternative.to_owned());
                        next
                    })
                })
                .collect();
        }
        for words in expanded {
            let status = Command::new(BINARY)
                .args(&words)
                .arg("--help")
                .output()
                .expect("the binary runs");
            let help = String::from_utf8_lossy(&status.stdout);
            assert!(
                status.status.success(),
                "conductor {} --help failed",
                words.join(" ")
            );
            assert!(
                !help.contains("Commands:") || words.is_empty(),
                "conductor {} is a group, not a command the README can show whole",
                words.join(" ")
            );
        }
    }
}

#[test]
fn every_path_the_readme_lists_is_served() {
    let base = url::Url::parse("http://127.0.0.1:8000/").unwrap();
    let document = conductor::routes::openapi::document(&base, true);
    let described: Vec<Vec<String>> = document
        .paths
        .paths
        .keys()
        .map(|path| path.split('/').map(str::to_owned).collect())
        .collect();
    let mut listed = Vec::new();
    for line in section("## API").iter().filter(|l| l.starts_with("| ")) {
        for span in backticked(line) {
            for word in span.split_whitespace() {
                if word.starts_with('/') && !word.starts_with("//") {
                    listed.push(word.split('?').next().unwrap_or_default().to_owned());
                }
            }
        }
    }
    assert!(listed.len() > 20, "the table was read: {listed:?}");
    // Served outside the description: Swagger UI's pages.
    let undescribed = ["/docs/"];
    let unserved: Vec<&String> = listed
        .iter()
        .filter(|path| !undescribed.contains(&path.as_str()))
        .filter(|path| {
            let segments: Vec<&str> = path.split('/').collect();
            !described.iter().any(|candidate| {
                // `{key}` in the description takes the rest of the path (`<owner>/<dataset>/<path>`).
                let takes_rest = candidate.last().is_some_and(|s| s == "{key}");
                (candidate.len() == segments.len() || (takes_rest && segments.len() >= candidate.len()))
                    && candidate.iter().zip(&segments).all(|(described, listed)| {
                        described == listed || described.starts_with('{') || listed.starts_with('<')
                    })
            })
        })
        .collect();
    assert!(
        unserved.is_empty(),
        "the README lists paths nothing serves: {unserved:?}"
    );
}
