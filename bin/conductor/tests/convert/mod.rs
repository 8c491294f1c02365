//! `conductor package convert` on each real fixture, as a publisher migrates their files: the output is the
//! committed golden beside this file, converting it again changes nothing, it needs no configuration, and the
//! normalised package is refused naming its resource and key.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BINARY: &str = env!("CARGO_BIN_EXE_conductor");

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `conductor package convert PATH` with nothing in the environment but `PATH`: no configuration is read.
fn convert(path: &Path) -> Output {
    Command::new(BINARY)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .args(["package", "convert"])
        .arg(path)
        .output()
        .expect("conductor runs")
}

#[test]
fn each_fixture_converts_to_its_golden_and_converting_again_changes_nothing() {
    let cases = [
        (
            "boost-moldova",
            root().join("tests/fixtures/packages/older/boost-moldova"),
        ),
        (
            "ukgov-finances-cra",
            root().join("tests/fixtures/packages/older/ukgov-finances-cra"),
        ),
        (
            "fdp-labels-and-hierarchies",
            root().join("tests/fixtures/packages/older/fdp-labels-and-hierarchies"),
        ),
        (
            "os-packager-example",
            root().join("crates/loader/tests/fixtures/os-packager-example.datapackage.json"),
        ),
    ];
    for (case, path) in cases {
        let once = convert(&path);
        assert!(
            once.status.success(),
            "{case}: {}",
            String::from_utf8_lossy(&once.stderr)
        );
        let golden =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/convert/{case}.datapackage.json"));
        assert_eq!(
            String::from_utf8(once.stdout.clone()).unwrap(),
            std::fs::read_to_string(&golden).unwrap(),
            "{case}: the output is {}",
            golden.display()
        );
        let again = tempfile::tempdir().unwrap();
        std::fs::write(again.path().join("datapackage.json"), &once.stdout).unwrap();
        let twice = convert(again.path());
        assert!(twice.status.success(), "{case}");
        assert_eq!(
            twice.stdout, once.stdout,
            "{case}: converting the output changes nothing"
        );
    }
}

#[test]
fn a_dimension_in_another_resource_is_refused_by_convert() {
    let refused = convert(&root().join("tests/fixtures/packages/older/fdp-entities-normalized"));
    assert_eq!(refused.status.code(), Some(1));
    assert!(refused.stdout.is_empty(), "nothing is printed as if converted");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("cannot be translated")
            && stderr.contains(
                "dimension \"payee\" reads from resource \"entities\" (the foreign key payee → entities.id"
            ),
        "{stderr}"
    );
}
