use std::path::Path;

use serde_json::{Value, json};

use super::*;

fn fixture(name: &str) -> Value {
    // Copies of shared/fixtures/fiscal descriptors (tests/fixtures/README.md).
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.datapackage.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn vocabulary() -> Vocabulary {
    Vocabulary::embedded().unwrap()
}

/// Each field's name and columnType (`-` for none) in the first resource.
fn types(descriptor: &Value) -> Vec<(String, String)> {
    descriptor["resources"][0]["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f["columnType"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect()
}

fn type_of(descriptor: &Value, name: &str) -> String {
    types(descriptor)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
        .unwrap_or_else(|| panic!("no field {name}"))
}

#[test]
fn current_descriptors_pass_unchanged() {
    let packager = fixture("os-packager-example");
    let translated = translate(&vocabulary(), &packager).unwrap();
    assert_eq!(translated.form, Form::Current);
    assert_eq!(translated.descriptor, packager);
}

#[test]
fn os_types_lose_their_suffix_and_the_model_types_the_rest() {
    let translated = translate(&vocabulary(), &fixture("boost-moldova")).unwrap();
    assert_eq!(translated.form, Form::OsType);
    let d = &translated.descriptor;
    let admin = "administrative-classification:generic";
    // From osType, suffix dropped.
    assert_eq!(type_of(d, "admin1"), format!("{admin}:level1:code"));
    assert_eq!(type_of(d, "admin4 (code)"), format!("{admin}:level4:code"));
    // Labels from their code, levels with no osType from their parent.
    assert_eq!(type_of(d, "admin2*"), format!("{admin}:level2:label"));
    assert_eq!(type_of(d, "admin5 (code)"), format!("{admin}:level5:code"));
    assert_eq!(type_of(d, "admin6 (label)"), format!("{admin}:level6:label"));
    assert_eq!(
        type_of(d, "econ2 (label)"),
        "economic-classification:generic:level2:label"
    );
    assert_eq!(type_of(d, "year"), "date:fiscal-year");
    // The `other` dimension has no vocabulary meaning: typed by its Table Schema type only.
    assert_eq!(type_of(d, "fin_source"), "unknown:string");
    // Measures: `value` with the model's options on the field.
    let approved = &d["resources"][0]["schema"]["fields"][23];
    assert_eq!(approved["name"], "approved");
    assert_eq!(approved["columnType"], "value");
    assert_eq!(
        (&approved["currency"], &approved["factor"], &approved["phase"]),
        (&json!("MDL"), &json!(1000), &json!("approved"))
    );
    assert!(
        types(d).iter().all(|(_, t)| t != "-"),
        "every field is in the model"
    );
    assert!(d["resources"][0]["schema"]["fields"][1].get("osType").is_none());
    assert_eq!(d["model"]["dimensions"]["date"]["primaryKey"], json!(["year"]));
}

#[test]
fn an_fdp_0_3_model_types_the_fields_it_names() {
    let translated = translate(&vocabulary(), &fixture("ukgov-finances-cra")).unwrap();
    assert_eq!(translated.form, Form::Fdp03);
    let d = &translated.descriptor;
    assert_eq!(type_of(d, "amount"), "value");
    assert_eq!(d["resources"][0]["schema"]["fields"][10]["currency"], "GBP");
    assert_eq!(type_of(d, "time_year"), "date:fiscal-year");
    assert_eq!(type_of(d, "cofog1_name"), "unknown:string");
    // A boolean reads as text; fields the model does not name stay untyped (and are not loaded).
    assert_eq!(type_of(d, "from_gov_department"), "unknown:string");
    assert_eq!(type_of(d, "openspending_id"), "-");
    assert_eq!(type_of(d, "time_week"), "-");

    let labels = translate(&vocabulary(), &fixture("fdp-labels-and-hierarchies")).unwrap();
    let d = &labels.descriptor;
    assert_eq!(type_of(d, "level2_title"), "unknown:string");
    let date = &d["resources"][0]["schema"]["fields"][5];
    assert_eq!(
        (&date["columnType"], &date["format"]),
        (&json!("unknown:date"), &json!("any"))
    );
    assert_eq!(
        d["model"]["dimensions"]["classification"]["primaryKey"],
        json!(["level1_id", "level2_id"])
    );
}

#[test]
fn mapping_is_read_as_model() {
    let mut old = fixture("fdp-labels-and-hierarchies");
    let model = old.as_object_mut().unwrap().remove("model").unwrap();
    old["mapping"] = model;
    let translated = translate(&vocabulary(), &old).unwrap();
    assert_eq!(translated.form, Form::Fdp03);
    assert!(translated.descriptor.get("mapping").is_none());
    let direct = translate(&vocabulary(), &fixture("fdp-labels-and-hierarchies")).unwrap();
    assert_eq!(translated.descriptor, direct.descriptor);
}

#[test]
fn a_dimension_in_another_resource_is_refused_naming_resource_and_key() {
    let problems = translate(&vocabulary(), &fixture("fdp-entities-normalized")).unwrap_err();
    let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "dimension \"payee\" reads from resource \"entities\" (the foreign key payee → entities.id joins it to \
          \"budget\"): dimensions kept in another resource are not loaded (only the fact resource \"budget\" is); \
          join \"entities\" into \"budget\" and upload again"
        ]
    );
}

#[test]
fn what_cannot_be_translated_is_named() {
    let descriptor = json!({"name": "x", "resources": [{"name": "r", "schema": {"fields": [
        {"name": "a", "osType": "no:such:type:full"}, {"name": "b", "type": "number"}]}}],
        "model": {"measures": {"m": {"source": "missing"}},
                  "dimensions": {"d": {"attributes": {"k": {"constant": "x"}, "j": {}}}}}});
    let messages: Vec<String> = translate(&vocabulary(), &descriptor)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        messages,
        [
            "field \"a\": the osType \"no:such:type:full\" has no columnType in the vocabulary",
            "measure \"m\": its source \"missing\" is not a field of the resource",
            "dimension \"d\" attribute \"j\" has no source",
            "dimension \"d\" attribute \"k\" is a constant: only attributes read from a column are loaded",
        ]
    );
}

#[test]
fn translating_the_output_again_changes_nothing() {
    for name in [
        "boost-moldova",
        "ukgov-finances-cra",
        "fdp-labels-and-hierarchies",
    ] {
        let once = translate(&vocabulary(), &fixture(name)).unwrap().descriptor;
        let twice = translate(&vocabulary(), &once).unwrap();
        assert_eq!(twice.form, Form::Current, "{name}");
        assert_eq!(twice.descriptor, once, "{name}");
    }
}

#[test]
fn a_model_past_the_field_bound_is_refused_before_any_work() {
    let attributes: serde_json::Map<String, Value> = (0..=crate::descriptor::MAX_FIELDS)
        .map(|i| {
            (
                format!("a{i}"),
                json!({"source": "x", "parent": format!("a{}", i + 1)}),
            )
        })
        .collect();
    let descriptor = json!({"name": "x", "resources": [{"schema": {"fields": [{"name": "x"}]}}],
        "model": {"measures": {}, "dimensions": {"d": {"attributes": attributes}}}});
    let problems = translate(&vocabulary(), &descriptor).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].message.contains("1001 attributes; at most 1000"),
        "{}",
        problems[0]
    );
}
