//! Checking a package on the publisher's machine before anything is uploaded (`conductor publish`): the same
//! planning and the same typed reading of every row as a load, so a bad file fails here, naming row and column,
//! instead of on the server after the upload.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

use conductor_core::DatasetName;
use serde_json::Value;

use crate::job::pipeline::{plan_load, resource_path, schema_order};
use crate::job::{LoadError, MAX_DESCRIPTOR_BYTES};
use crate::star::{FactError, MAX_DISTINCT, StarBuilder};
use crate::table::{CsvFormat, TableReader};
use crate::values::Cell;
use crate::vocabulary::Vocabulary;

/// What the check found: the package is loadable as it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The dataset name the package's `name` gives (its id on the server is `<owner>:<dataset>`).
    pub dataset: String,
    /// The rows of the resource a load reads.
    pub rows: u64,
    /// Every file of the package, relative to its folder: `datapackage.json` first, then each resource's
    /// local paths.
    pub files: Vec<String>,
}

/// Checks the package whose descriptor is `descriptor` (a `datapackage.json`), reading its data from beside it.
pub fn check_package(vocabulary: &Vocabulary, descriptor: &Path) -> Result<Checked, LoadError> {
    let folder = descriptor.parent().unwrap_or(Path::new("."));
    let unreadable = |path: &Path, e: std::io::Error| LoadError::Invalid(format!("{}: {e}", path.display()));
    let mut bytes = Vec::new();
    File::open(descriptor)
        .map_err(|e| unreadable(descriptor, e))?
        .take(MAX_DESCRIPTOR_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unreadable(descriptor, e))?;
    if bytes.len() as u64 > MAX_DESCRIPTOR_BYTES {
        return Err(LoadError::Invalid(format!(
            "the descriptor is over {MAX_DESCRIPTOR_BYTES} bytes"
        )));
    }
    let package: Value = serde_json::from_slice(&bytes).map_err(|e| LoadError::Json(e.to_string()))?;
    let name = package
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| LoadError::Invalid("the datapackage has no name".into()))?;
    let dataset = DatasetName::slug(name)
        .map_err(|e| LoadError::Invalid(format!("the name {name:?} gives no usable dataset id: {e}")))?;
    let mut files = vec!["datapackage.json".to_owned()];
    for resource in package["resources"].as_array().into_iter().flatten() {
        for path in local_paths(resource)? {
            if !folder.join(&path).is_file() {
                return Err(LoadError::Invalid(format!(
                    "the resource file {path} is not in {}",
                    folder.display()
                )));
            }
            if !files.contains(&path) {
                files.push(path);
            }
        }
    }

    let (index, _fdp, star) = plan_load(vocabulary, &package, "local_check")?;
    let resource = &package["resources"][index];
    let data = resource_path(resource).ok_or_else(|| {
        LoadError::Invalid(
            "the resource to load has no local path: publish uploads the package's own files".into(),
        )
    })?;
    let data_path = folder.join(data);
    let file = File::open(&data_path).map_err(|e| unreadable(&data_path, e))?;
    let format = CsvFormat::of_resource(resource)?;
    let mut table = TableReader::open(
        Box::new(BufReader::new(file)),
        &format,
        star.columns.clone(),
        &schema_order(resource),
    )?;
    let mut builder = StarBuilder::new(&star);
    let mut fact: Vec<Cell> = Vec::new();
    loop {
        match builder.read_fact(&mut table, &mut fact) {
            Ok(true) => {}
            Ok(false) => break,
            Err(FactError::Table(error)) => return Err(error.into()),
            Err(FactError::TooMany(dimension)) => {
                return Err(LoadError::Invalid(format!(
                    "row {}: dimension {} has more than {MAX_DISTINCT} distinct rows; is a per-row value (an id) \
                     mapped to a dimension instead of left out?",
                    table.rows_read(),
                    star.layout.dimensions[dimension].name
                )));
            }
        }
    }
    Ok(Checked {
        dataset: dataset.to_string(),
        rows: table.rows_read(),
        files,
    })
}

/// A resource's local files: its `path` (or each of a list), which must stay inside the package's folder.
fn local_paths(resource: &Value) -> Result<Vec<String>, LoadError> {
    let paths: Vec<&str> = match resource.get("path") {
        Some(Value::String(p)) => vec![p.as_str()],
        Some(Value::Array(paths)) => paths.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    paths
        .into_iter()
        .filter(|path| !path.contains("://"))
        .map(|path| {
            let inside = Path::new(path)
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            if inside && !path.is_empty() {
                Ok(PathBuf::from(path).to_string_lossy().replace('\\', "/"))
            } else {
                Err(LoadError::Invalid(format!(
                    "the resource path {path:?} leaves the package's folder"
                )))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn package(dir: &Path, csv: &str) -> PathBuf {
        let descriptor = json!({
            "name": "Budget 2024",
            "resources": [{
                "name": "budget", "path": "data/budget.csv", "format": "csv",
                "schema": {"fields": [
                    {"name": "Year", "columnType": "date:fiscal-year"},
                    {"name": "Function", "columnType": "administrative-classification:generic:level1:code"},
                    {"name": "Amount", "columnType": "value", "type": "number"}
                ]}
            }]
        });
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/budget.csv"), csv).unwrap();
        let path = dir.join("datapackage.json");
        std::fs::write(&path, descriptor.to_string()).unwrap();
        path
    }

    #[test]
    fn a_good_package_is_counted_and_its_files_listed() {
        let dir = tempfile::tempdir().unwrap();
        let path = package(
            dir.path(),
            "Year,Function,Amount\n2024,Health,10.5\n2024,Schools,3\n",
        );
        let checked = check_package(&Vocabulary::embedded().unwrap(), &path).unwrap();
        assert_eq!(checked.rows, 2);
        assert_eq!(checked.dataset, "budget_2024");
        assert_eq!(checked.files, ["datapackage.json", "data/budget.csv"]);
    }

    #[test]
    fn a_bad_value_is_named_by_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = package(
            dir.path(),
            "Year,Function,Amount\n2024,Health,10.5\n2024,Schools,lots\n",
        );
        let error = check_package(&Vocabulary::embedded().unwrap(), &path)
            .unwrap_err()
            .to_string();
        assert!(error.contains("row 2") && error.contains("Amount"), "{error}");
    }

    #[test]
    fn missing_files_and_paths_outside_the_folder_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = package(dir.path(), "Year,Function,Amount\n");
        std::fs::remove_file(dir.path().join("data/budget.csv")).unwrap();
        let error = check_package(&Vocabulary::embedded().unwrap(), &path)
            .unwrap_err()
            .to_string();
        assert!(error.contains("data/budget.csv is not in"), "{error}");
        let outside = local_paths(&json!({"path": "../secrets.csv"}))
            .unwrap_err()
            .to_string();
        assert!(outside.contains("leaves the package's folder"), "{outside}");
    }
}
