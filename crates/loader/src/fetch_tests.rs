//! Unit tests of `fetch.rs`: the policy, the address checks, the limit, errors that name what was asked for.

use super::*;

fn url(raw: &str) -> Url {
    Url::parse(raw).unwrap()
}

fn policy() -> FetchPolicy {
    FetchPolicy::new(
        &["http://127.0.0.1:8000/datastore/files/0123456789abcdef0123456789abcdef".into()],
        &[
            "https://data.example.org/open/".into(),
            "http://127.0.0.1:9999/".into(),
        ],
        1024,
    )
}

#[test]
fn only_the_owners_prefix_and_the_allowlist_pass() {
    let p = policy();
    let own = "http://127.0.0.1:8000/datastore/files/0123456789abcdef0123456789abcdef/d/datapackage.json";
    assert_eq!(p.check(&url(own)).unwrap(), Trust::Datastore);
    assert_eq!(
        p.check(&url("https://data.example.org/open/x.csv")).unwrap(),
        Trust::Allowlisted
    );
    assert_eq!(
        p.check(&url("http://127.0.0.1:9999/slow.csv")).unwrap(),
        Trust::Allowlisted
    );
    for refused in [
        "http://127.0.0.1:8000/datastore/files/0123456789abcdef0123456789abcdefX/d/datapackage.json",
        "http://127.0.0.1:8000/datastore/files/0123456789abcdef0123456789abcdef/../ffffffffffffffffffffffffffffffff/d.json",
        "http://127.0.0.1:8000/datastore/files/0123456789abcdef0123456789abcdef/%2e%2e/x/y.json",
        "http://127.0.0.1:8001/datastore/files/0123456789abcdef0123456789abcdef/d/datapackage.json",
        "https://127.0.0.1:8000/datastore/files/0123456789abcdef0123456789abcdef/d/datapackage.json",
        "https://data.example.org/openx/x.csv",
        "https://data.example.org.evil.test/open/x.csv",
        "https://user@data.example.org/open/x.csv",
        "http://169.254.169.254/latest/meta-data/",
    ] {
        assert!(
            matches!(p.check(&url(refused)), Err(FetchError::NotAllowed(_))),
            "{refused}"
        );
    }
    for scheme in [
        "file:///etc/passwd",
        "ftp://data.example.org/open/x",
        "gopher://x/",
    ] {
        assert!(
            matches!(p.check(&url(scheme)), Err(FetchError::Scheme(_))),
            "{scheme}"
        );
    }
}

#[test]
fn files_pass_only_under_the_operators_folder() {
    let p = policy();
    assert!(matches!(
        p.check(&url("file:///etc/passwd")),
        Err(FetchError::Scheme(_))
    ));
    let root = tempfile::tempdir().unwrap();
    let pkg = root.path().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::create_dir_all(root.path().join("pkg2")).unwrap();
    for file in ["pkg/datapackage.json", "pkg2/x.csv", "secret.csv"] {
        std::fs::write(root.path().join(file), "x").unwrap();
    }
    std::os::unix::fs::symlink(root.path().join("secret.csv"), pkg.join("link.csv")).unwrap();
    let p = p.with_operator_folder(&pkg);
    let base = Url::from_directory_path(&pkg).unwrap();
    let at = |relative: &str| Url::parse(&format!("{base}{relative}")).unwrap();
    assert_eq!(p.check(&at("datapackage.json")).unwrap(), Trust::OperatorFile);
    assert_eq!(
        p.check(&at("../pkg/datapackage.json")).unwrap(),
        Trust::OperatorFile
    );
    for refused in [
        "../pkg2/x.csv",
        "..%2Fsecret.csv",
        "%2E%2E%2Fsecret.csv",
        "link.csv",
        "missing.csv",
    ] {
        assert!(p.check(&at(refused)).is_err(), "{refused}");
    }
    assert!(p.check(&url("file:///etc/passwd")).is_err());
}

#[test]
fn private_and_metadata_addresses_are_forbidden() {
    for bad in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fc00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "255.255.255.255",
    ] {
        assert!(forbidden(bad.parse().unwrap()), "{bad}");
    }
    for good in [
        "93.184.215.14",
        "8.8.8.8",
        "2606:4700::1111",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ] {
        assert!(!forbidden(good.parse().unwrap()), "{good}");
    }
    let p = policy();
    assert!(
        p.address_allowed("127.0.0.1", "127.0.0.1".parse().unwrap()),
        "the datastore's own host"
    );
    assert!(!p.address_allowed("evil.test", "127.0.0.1".parse().unwrap()));
}

#[test]
fn limited_streams_stop_past_the_limit() {
    let mut exact = Limited::new(&b"12345"[..], 5);
    let mut out = Vec::new();
    assert!(exact.read_to_end(&mut out).is_ok());
    let mut over = Limited::new(&b"123456"[..], 5);
    assert!(over.read_to_end(&mut Vec::new()).is_err());
}

/// A private bucket: every datastore URL is read through a signed URL of the same object.
struct PrivateBucket;

impl DatastoreReads for PrivateBucket {
    fn locate(&self, url: &Url) -> Option<Located> {
        let mut signed = url.clone();
        signed.set_query(Some("X-Amz-Credential=AKIDEXAMPLE&X-Amz-Signature=0123abcd"));
        Some(Located::Signed(signed))
    }
}

/// A store that is down: every read fails, naming the URL it was given, as the HTTP reader does.
struct Down;

impl Source for Down {
    fn open(&self, url: &Url, _policy: &FetchPolicy) -> Result<Opened, FetchError> {
        Err(FetchError::Failed {
            url: url.to_string(),
            reason: "Connection refused (os error 111)".into(),
        })
    }
}

#[test]
fn a_failed_signed_read_names_the_url_asked_for_not_its_signature() {
    let reads = DatastoreFirst {
        datastore: Some(std::sync::Arc::new(PrivateBucket)),
        remote: Down,
    };
    let asked =
        url("http://127.0.0.1:8000/datastore/files/0123456789abcdef0123456789abcdef/budget/datapackage.json");
    let Err(error) = reads.open(&asked, &policy()) else {
        panic!("the store is down");
    };
    let shown = error.to_string();
    assert_eq!(shown, format!("{asked}: Connection refused (os error 111)"));
    assert!(!shown.contains("X-Amz"), "{shown}");
}
