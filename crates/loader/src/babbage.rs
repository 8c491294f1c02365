//! The Babbage model (the one os-api reads), built from the FDP model as datapackage-pipelines-fiscal's
//! `create_babbage_model` does (reference §2.4): one hierarchy per dimension, one Babbage dimension per
//! non-label attribute (with its label attribute when it has one), joined to the fact table on
//! `<hierarchy>_id = _fdp__id_`, and the measures as fact-table columns.

use serde_json::{Map, Value, json};

use crate::fdp::FdpModel;

/// The fact table of a package (DESIGN §4): the owner's id and the first 16 hex digits of the dataset name's
/// md5, 48 characters, so every table name stays under PostgreSQL's 63-byte limit.
pub fn fact_table_name(owner: &conductor_core::UserId, dataset: &conductor_core::DatasetName) -> String {
    use md5::{Digest, Md5};
    let digest = hex::encode(Md5::digest(dataset.as_str().as_bytes()));
    format!("{owner}{}", &digest[..16])
}

/// A dimension (concept type) name as a table or column name: non-alphanumeric runs become `_`, lower case.
pub fn hierarchy_name(dimension: &str) -> String {
    let mut name = String::with_capacity(dimension.len());
    for c in dimension.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else if !name.ends_with('_') {
            name.push('_');
        }
    }
    name.trim_matches('_').to_owned()
}

/// The dimension tables: `<fact_table>_<i>` for each dimension, `i` its position among the dimension names in
/// sorted order (reference §3.2).
pub fn dimension_tables(fdp: &FdpModel, fact_table: &str) -> Vec<(String, String)> {
    let mut names: Vec<&String> = fdp.model["dimensions"]
        .as_object()
        .map(|d| d.keys().collect())
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .enumerate()
        .map(|(i, name)| (name.clone(), format!("{fact_table}_{i}")))
        .collect()
}

/// The Babbage model of `fdp` whose facts live in `fact_table`.
pub fn babbage_model(fdp: &FdpModel, fact_table: &str) -> Value {
    let field_types: Map<String, Value> = fdp.schema["fields"]
        .as_object()
        .map(|fields| {
            fields
                .values()
                .map(|f| {
                    (
                        f["slug"].as_str().unwrap_or_default().to_owned(),
                        f["type"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let type_of = |slug: &str| field_types.get(slug).cloned().unwrap_or(Value::Null);
    let tables = dimension_tables(fdp, fact_table);
    let mut hierarchies = Map::new();
    let mut dimensions = Map::new();
    let empty = Map::new();
    for (name, dimension) in fdp.model["dimensions"].as_object().unwrap_or(&empty) {
        let hierarchy = hierarchy_name(name);
        let table = tables
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
            .unwrap_or_default();
        hierarchies.insert(
            hierarchy.clone(),
            json!({"label": hierarchy, "levels": dimension["primaryKey"]}),
        );
        let attributes = dimension["attributes"].as_object().unwrap_or(&empty);
        let label_of = |slug: &str| attributes.values().find(|a| a["labelfor"].as_str() == Some(slug));
        for (slug, attribute) in attributes.iter().filter(|(_, a)| a.get("labelfor").is_none()) {
            let title = |a: &Value| {
                a.get("title")
                    .filter(|t| t.as_str().is_some_and(|t| !t.is_empty()))
                    .unwrap_or(&a["source"])
                    .clone()
            };
            let mut babbage_attributes = Map::new();
            babbage_attributes.insert(
                slug.clone(),
                json!({"column": format!("{table}.{slug}"), "label": title(attribute), "type": type_of(slug)}),
            );
            let mut babbage = json!({
                "key_attribute": slug,
                "label": attribute["title"],
                "join_column": [format!("{hierarchy}_id"), "_fdp__id_"],
            });
            // The pipeline names the label attribute by its source (the field name), which equals its slug.
            if let Some(label) = label_of(slug) {
                let source = label["source"].as_str().unwrap_or_default().to_owned();
                babbage_attributes.insert(
                    source.clone(),
                    json!({"column": format!("{table}.{source}"), "label": title(label), "type": type_of(&source)}),
                );
                babbage["label_attribute"] = json!(source);
            }
            babbage["attributes"] = Value::Object(babbage_attributes);
            dimensions.insert(slug.clone(), babbage);
        }
    }
    let mut measures = Map::new();
    for (name, measure) in fdp.model["measures"].as_object().unwrap_or(&empty) {
        // The fact column is the measure's source (a package's own model may name a measure otherwise).
        let column = measure["source"].as_str().unwrap_or(name);
        measures.insert(
            name.clone(),
            json!({"column": column, "label": measure["title"], "type": type_of(column)}),
        );
    }
    json!({"fact_table": fact_table, "dimensions": dimensions, "hierarchies": hierarchies, "measures": measures})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdp::fields_to_model;
    use crate::vocabulary::Vocabulary;

    #[test]
    fn the_worked_example_gives_the_documented_babbage_model() {
        let fdp = fields_to_model(&Vocabulary::embedded().unwrap(), &crate::fdp::worked_example()).unwrap();
        let owner = conductor_core::UserId::parse("583b10ad15f2e7f078afd3431c2c09ea").unwrap();
        let t = fact_table_name(&owner, &conductor_core::DatasetName::parse("example").unwrap());
        assert_eq!(
            t, "583b10ad15f2e7f078afd3431c2c09ea1a79a4d60de6718e",
            "reference §2.4's T"
        );
        let t = t.as_str();
        // Reference §2.4, with <T> spelled out.
        let expected = json!({
         "fact_table": t,
         "hierarchies": {
           "administrative_classification": {"label": "administrative_classification", "levels": ["admin1_code", "admin2_code"]},
           "date": {"label": "date", "levels": ["year"]}},
         "dimensions": {
           "admin1_code": {"key_attribute": "admin1_code", "label": "admin1_code", "label_attribute": "admin1_label",
             "join_column": ["administrative_classification_id", "_fdp__id_"],
             "attributes": {"admin1_code":  {"column": format!("{t}_0.admin1_code"),  "label": "admin1_code",  "type": "string"},
                            "admin1_label": {"column": format!("{t}_0.admin1_label"), "label": "admin1_label", "type": "string"}}},
           "admin2_code": {"key_attribute": "admin2_code", "label": "admin2_code",
             "join_column": ["administrative_classification_id", "_fdp__id_"],
             "attributes": {"admin2_code": {"column": format!("{t}_0.admin2_code"), "label": "admin2_code", "type": "string"}}},
           "year": {"key_attribute": "year", "label": "year", "join_column": ["date_id", "_fdp__id_"],
             "attributes": {"year": {"column": format!("{t}_1.year"), "label": "year", "type": "integer"}}}},
         "measures": {"amount": {"column": "amount", "label": "amount", "type": "number"}}
        });
        assert_eq!(babbage_model(&fdp, t), expected);
        assert_eq!(
            hierarchy_name("administrative-classification"),
            "administrative_classification"
        );
    }
}
