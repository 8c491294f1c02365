//! `/search/package`'s parameters as the gateway parses them (`q`, `size`, JSON-valued filters), from a query
//! string: a query or a `SearchError`, never a panic, `size` never past the cap.
#![no_main]

use conductor_search::SearchQuery;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let params: Vec<(&str, &str)> = text
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect();
    if let Ok(query) = SearchQuery::parse("package", params.iter().copied(), None, 100) {
        assert!(query.size <= 100);
    }
});
