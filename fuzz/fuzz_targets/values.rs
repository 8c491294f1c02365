//! One CSV value read as each Table Schema type the loader knows, with the input's first bytes choosing the
//! separators and date format: every input is a value or a `ValueError`, never a panic.
#![no_main]

use conductor_loader::{ValueFormat, read_value};
use libfuzzer_sys::fuzz_target;

const TYPES: [&str; 6] = ["string", "number", "integer", "date", "any", "boolean"];
const FORMATS: [&str; 5] = ["default", "any", "fmt:%d/%m/%Y", "%Y-%m-%d", "fmt:%Y%m%d"];
const SEPARATORS: [&str; 5] = [".", ",", " ", "", "\u{a0}"];

fuzz_target!(|data: &[u8]| {
    let [kind, decimal, group, format, rest @ ..] = data else {
        return;
    };
    let Ok(raw) = std::str::from_utf8(rest) else {
        return;
    };
    let pick = |list: &[&str], at: &u8| list[usize::from(*at) % list.len()].to_owned();
    let format = ValueFormat {
        data_type: pick(&TYPES, kind),
        decimal_char: pick(&SEPARATORS, decimal),
        group_char: pick(&SEPARATORS, group),
        format: pick(&FORMATS, format),
    };
    let _ = read_value(raw, &format);
});
