//! A `config/default.toml` as the gateway loads it at start-up: settings or a `SettingsError` naming the layer,
//! never a panic, whatever the file holds.
#![no_main]

use conductor::settings::{Environment, Settings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    if std::fs::write(dir.path().join("default.toml"), text).is_err() {
        return;
    }
    let _ = Settings::load(dir.path(), &Environment::from_pairs([("CONDUCTOR_ENV", "development")]));
});
