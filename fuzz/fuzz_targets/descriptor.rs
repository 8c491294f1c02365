//! A `datapackage.json` planned as a load plans it: older forms translated, the plan, os-types' model, the
//! package's stated model. Every input is a model or a list of problems, never a panic.
#![no_main]

use std::sync::LazyLock;

use conductor_loader::{Vocabulary, package_model, translate};
use libfuzzer_sys::fuzz_target;

static VOCABULARY: LazyLock<Vocabulary> =
    LazyLock::new(|| Vocabulary::embedded().expect("the embedded vocabulary reads"));

fuzz_target!(|data: &[u8]| {
    let Ok(descriptor) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(translated) = translate(&VOCABULARY, &descriptor) {
        // Translating the current form again changes nothing (what `conductor package convert` promises).
        let again = translate(&VOCABULARY, &translated.descriptor).expect("a translation translates");
        assert_eq!(again.descriptor, translated.descriptor);
    }
    let _ = package_model(&VOCABULARY, &descriptor);
});
