//! os-types' `fieldsToModel` as the loader builds it, over any field list (names, columnTypes, options): a
//! model or os-types' errors, never a panic.
#![no_main]

use std::sync::LazyLock;

use conductor_loader::{InputField, Vocabulary, babbage_model, fields_to_model};
use libfuzzer_sys::fuzz_target;

static VOCABULARY: LazyLock<Vocabulary> =
    LazyLock::new(|| Vocabulary::embedded().expect("the embedded vocabulary reads"));

fuzz_target!(|data: &[u8]| {
    let Ok(fields) = serde_json::from_slice::<Vec<InputField>>(data) else {
        return;
    };
    if let Ok(model) = fields_to_model(&VOCABULARY, &fields) {
        let _ = babbage_model(&model, "fact");
    }
});
