//! A file path and an object key as the datastore checks them before signing or serving: whatever passes stays
//! inside its package (no `..`, no absolute path, no control character) and reads back the same.
#![no_main]

use conductor_datastore::{ObjectKey, RelativePath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(path) = RelativePath::parse(raw) {
        let text = path.as_str();
        assert!(!text.starts_with('/'), "{text:?}");
        assert!(!text.split('/').any(|part| part == ".." || part == "."), "{text:?}");
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }
    if let Ok(key) = ObjectKey::parse(raw) {
        assert_eq!(ObjectKey::parse(key.as_str()).map(|k| k.as_str().to_owned()), Ok(key.as_str().to_owned()));
    }
});
