//! The layered configuration as a deployer meets it: layers, the original variables, errors, redaction.

use std::fs;

use super::*;

fn load(files: &[(&str, &str)], env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    let dir = tempfile_dir();
    for (name, text) in files {
        fs::write(dir.join(name), text).unwrap();
    }
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.replace("{dir}", &dir.display().to_string())))
        .collect();
    Settings::load(&dir, &Environment::from_pairs(env))
}

/// A fresh, uniquely named folder for one test's layers. Named by process id alone, a folder of an earlier
/// run under a reused pid was read again (its stale files made a layer invalid); kept, as the settings point
/// into it for the rest of the test.
fn tempfile_dir() -> PathBuf {
    tempfile::Builder::new()
        .prefix("conductor-settings-")
        .tempdir()
        .unwrap()
        .keep()
}

#[test]
fn the_shipped_default_toml_equals_the_built_in_defaults() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let text = fs::read_to_string(shipped.join("default.toml")).unwrap();
    let settings = load(&[("default.toml", &text)], &[]).unwrap();
    assert_eq!(settings, Settings::default());
    for profile in ["development", "production", "test"] {
        let text = fs::read_to_string(shipped.join(format!("{profile}.toml"))).unwrap();
        let key = (
            "CONDUCTOR__AUTH__KEYS__PRIVATE_KEY_FILE",
            "/etc/conductor/private.pem",
        );
        load(
            &[(&format!("{profile}.toml"), &text)],
            &[("CONDUCTOR_ENV", profile), key],
        )
        .unwrap_or_else(|e| panic!("config/{profile}.toml: {e}"));
    }
}

#[test]
fn later_layers_win() {
    let settings = load(
        &[
            (
                "default.toml",
                "data_dir = 'a'\n[database]\npool_size = 2\nauto_migrate = false",
            ),
            ("development.toml", "data_dir = 'b'"),
            ("local.toml", "[server]\nbind = '127.0.0.1:9001'"),
            (
                "extra.toml",
                "[server]\nbind = '127.0.0.1:9002'\nbase_url = 'https://extra.example'",
            ),
        ],
        &[
            ("CONDUCTOR_CONFIG", "{dir}/extra.toml"),
            ("OS_BASE_URL", "https://os.example/"),
            ("CONDUCTOR__DATABASE__POOL_SIZE", "5"),
            ("CONDUCTOR__DATA_DIR", "/srv/conductor"),
        ],
    )
    .unwrap();
    assert_eq!(settings.data_dir, PathBuf::from("/srv/conductor"));
    assert_eq!(settings.server.bind, "127.0.0.1:9002".parse().unwrap());
    assert_eq!(
        settings.server.base_url.as_str(),
        "https://os.example/",
        "OS_* over files"
    );
    assert_eq!(settings.database.pool_size, 5, "CONDUCTOR__ over everything");
    assert!(!settings.database.auto_migrate);
    assert_eq!(
        settings.database_url().expose(),
        "sqlite:///srv/conductor/conductor.db"
    );
}

#[test]
fn the_profile_file_follows_conductor_env() {
    let files = [
        ("production.toml", "data_dir = 'prod'"),
        ("development.toml", "data_dir = 'dev'"),
    ];
    assert_eq!(load(&files, &[]).unwrap().data_dir, PathBuf::from("dev"));
    let production = [
        ("CONDUCTOR_ENV", "production"),
        ("CONDUCTOR__AUTH__KEYS__PRIVATE_KEY_FILE", "/k.pem"),
    ];
    assert_eq!(load(&files, &production).unwrap().data_dir, PathBuf::from("prod"));
}

#[test]
fn original_variables_map_onto_our_keys() {
    let settings = load(
        &[],
        &[
            ("OS_CONDUCTOR_ENGINE", "postgresql://postgres@db/postgres"),
            ("OS_API_CACHE", "redis-host"),
        ],
    )
    .unwrap();
    assert_eq!(
        settings.database_url().expose(),
        "postgresql://postgres@db/postgres"
    );
    assert_eq!(
        settings.cache.redis_url.unwrap().expose(),
        "redis://redis-host:6379"
    );
    let ours = load(
        &[],
        &[
            ("OS_CONDUCTOR_ENGINE", "postgresql://a/b"),
            ("CONDUCTOR__DATABASE__URL", "sqlite://x.db"),
        ],
    );
    assert_eq!(ours.unwrap().database_url().expose(), "sqlite://x.db");
}

#[test]
fn unknown_keys_name_the_key_and_the_layer() {
    let error = load(&[("local.toml", "[server]\nbindd = '127.0.0.1:1'")], &[])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("local.toml") && error.contains("unknown key `server.bindd`"),
        "{error}"
    );

    let error = load(&[], &[("CONDUCTOR__SERVER__BINDD", "x")])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("CONDUCTOR__* variables") && error.contains("`server.bindd`"),
        "{error}"
    );

    let error = load(&[("default.toml", "colour = 'blue'")], &[])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("default.toml") && error.contains("unknown key `colour`"),
        "{error}"
    );
}

#[test]
fn malformed_values_name_the_key_and_the_layer() {
    let error = load(&[("development.toml", "[database]\npool_size = 'many'")], &[])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("development.toml") && error.contains("database.pool_size"),
        "{error}"
    );

    let error = load(&[], &[("CONDUCTOR__SERVER__BIND", "not-an-address")])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("CONDUCTOR__* variables") && error.contains("server.bind"),
        "{error}"
    );

    let error = load(&[], &[("OS_BASE_URL", "not a url")])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("OS_") && error.contains("server.base_url"),
        "{error}"
    );

    let error = load(&[], &[("CONDUCTOR__SERVER__BODY_LIMIT", "lots")])
        .unwrap_err()
        .to_string();
    assert!(error.contains("server.body_limit"), "{error}");
}

#[test]
fn semantic_checks_name_the_key() {
    let cases = [
        ("CONDUCTOR__DATABASE__URL", "mysql://db/x", "database.url"),
        ("CONDUCTOR__DATABASE__POOL_SIZE", "0", "database.pool_size"),
        (
            "CONDUCTOR__SERVER__BASE_URL",
            "ftp://x.example",
            "server.base_url",
        ),
        (
            "CONDUCTOR__SERVER__CORS__ALLOWED_ORIGINS",
            "https://a.example,*",
            "server.cors.allowed_origins",
        ),
        ("CONDUCTOR__CACHE__REDIS_URL", "http://cache", "cache.redis_url"),
    ];
    for (var, value, key) in cases {
        let error = load(&[], &[(var, value)]).unwrap_err().to_string();
        assert!(error.starts_with(key), "{var}={value}: {error}");
    }
}

#[test]
fn a_missing_conductor_config_file_is_an_error() {
    let error = load(&[], &[("CONDUCTOR_CONFIG", "/nonexistent/conductor.toml")])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("CONDUCTOR_CONFIG=/nonexistent/conductor.toml"),
        "{error}"
    );
}

#[test]
fn cors_defaults_to_the_base_url_origin_and_accepts_lists_from_env() {
    let settings = load(&[], &[]).unwrap();
    assert_eq!(settings.cors_origins().unwrap(), ["http://127.0.0.1:8000"]);
    let listed = load(
        &[],
        &[(
            "CONDUCTOR__SERVER__CORS__ALLOWED_ORIGINS",
            "https://a.example/x,http://b.example:8080",
        )],
    );
    assert_eq!(
        listed.unwrap().cors_origins().unwrap(),
        ["https://a.example", "http://b.example:8080"]
    );
}

#[test]
fn secrets_are_redacted_in_debug_and_show() {
    let settings = load(
        &[],
        &[
            ("CONDUCTOR__DATABASE__URL", "postgres://app:hunter2@db/conductor"),
            ("OS_API_CACHE", "redis://:hunter3@cache:6379"),
        ],
    )
    .unwrap();
    let shown = settings.to_redacted_toml().unwrap();
    let debug = format!("{settings:?}");
    for text in [&shown, &debug] {
        assert!(!text.contains("hunter2") && !text.contains("hunter3"), "{text}");
        assert!(text.contains("postgres://app:[REDACTED]@db/conductor"), "{text}");
    }
}

#[test]
fn the_original_secrets_bundle_sets_keys_and_the_google_provider() {
    let bundle = conductor_auth::SecretsBundle {
        private_pem: secrecy::SecretString::from("PRIVATE PEM"),
        public_pem: "PUBLIC PEM".into(),
        google_client_id: Some("client.apps.googleusercontent.com".into()),
        google_client_secret: Some(secrecy::SecretString::from("g-secret")),
    };
    let pieces = bundle.encode().unwrap();
    let env: Vec<(String, &str)> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("OS_CONDUCTOR_SECRETS_{i}"), p.as_str()))
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let settings = load(&[], &env).unwrap();
    assert_eq!(
        settings.auth.keys.private_key_pem.as_ref().map(Secret::expose),
        Some("PRIVATE PEM")
    );
    assert_eq!(settings.auth.keys.public_key_pem.as_deref(), Some("PUBLIC PEM"));
    let google = &settings.auth.providers["google"];
    assert_eq!(google.issuer_url.as_str(), "https://accounts.google.com/");
    assert_eq!(
        google.client_secret.as_ref().map(Secret::expose),
        Some("g-secret")
    );
    let shown = settings.to_redacted_toml().unwrap();
    assert!(
        !shown.contains("g-secret") && !shown.contains("PRIVATE PEM"),
        "{shown}"
    );

    let error = load(&[], &[("OS_CONDUCTOR_SECRETS_0", "garbage!")])
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("OS_CONDUCTOR_SECRETS_0..3"), "{error}");
}

#[test]
fn production_refuses_the_dev_provider_and_missing_keys() {
    let error = load(&[], &[("CONDUCTOR_ENV", "production")])
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("auth.keys"), "{error}");
    let error = load(
        &[],
        &[
            ("CONDUCTOR_ENV", "production"),
            ("CONDUCTOR__AUTH__KEYS__PRIVATE_KEY_FILE", "/k.pem"),
            ("CONDUCTOR__AUTH__DEV_LOGIN", "true"),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(error.starts_with("auth.dev_login"), "{error}");
}

#[test]
fn auth_values_are_checked() {
    let cases = [
        (
            "CONDUCTOR__AUTH__REDIRECT_ALLOWLIST",
            "not-a-url",
            "auth.redirect_allowlist",
        ),
        ("CONDUCTOR__AUTH__USER_TOKEN_TTL", "0s", "auth.user_token_ttl"),
        (
            "CONDUCTOR__AUTH__PROVIDERS__DEV__ISSUER_URL",
            "https://x.example",
            "auth.providers",
        ),
    ];
    for (var, value, key) in cases {
        let mut env = vec![(var, value)];
        if key == "auth.providers" {
            env.push(("CONDUCTOR__AUTH__PROVIDERS__DEV__CLIENT_ID", "x"));
        }
        let error = load(&[], &env).unwrap_err().to_string();
        assert!(error.starts_with(key), "{var}={value}: {error}");
    }
    let error = load(&[], &[("CONDUCTOR__AUTH__USER_TOKEN_TTL", "fortnight")])
        .unwrap_err()
        .to_string();
    assert!(error.contains("auth.user_token_ttl"), "{error}");
    let settings = load(
        &[],
        &[(
            "CONDUCTOR__AUTH__REDIRECT_ALLOWLIST",
            "https://a.example/app/,https://b.example/",
        )],
    );
    assert_eq!(
        settings.unwrap().cors_origins().unwrap(),
        ["https://a.example", "https://b.example"]
    );
}

#[test]
fn the_original_s3_variables_select_the_s3_datastore() {
    let settings = load(
        &[],
        &[
            ("OS_S3_HOSTNAME", "s3.eu-west-1.amazonaws.com"),
            ("OS_STORAGE_BUCKET_NAME", "datastore.openspending.org"),
            ("OS_ACCESS_KEY_ID", "AKID"),
            ("OS_SECRET_ACCESS_KEY", "s3-secret"),
        ],
    )
    .unwrap();
    assert_eq!(settings.datastore.backend, DatastoreBackend::S3);
    let s3 = &settings.datastore.s3;
    assert_eq!(
        s3.endpoint.as_ref().unwrap().as_str(),
        "https://s3.eu-west-1.amazonaws.com/"
    );
    assert!(!s3.path_style);
    assert_eq!(s3.bucket.as_deref(), Some("datastore.openspending.org"));
    assert!(!settings.to_redacted_toml().unwrap().contains("s3-secret"));

    let fake = load(
        &[],
        &[
            ("OS_S3_HOSTNAME", "fakes3"),
            ("OS_S3_PORT", "4567"),
            ("OS_STORAGE_BUCKET_NAME", "b"),
            ("OS_ACCESS_KEY_ID", "a"),
            ("OS_SECRET_ACCESS_KEY", "s"),
        ],
    );
    let fake = fake.unwrap();
    assert_eq!(
        fake.datastore.s3.endpoint.unwrap().as_str(),
        "http://fakes3:4567/"
    );
    assert!(fake.datastore.s3.path_style);

    let error = load(&[], &[("CONDUCTOR__DATASTORE__BACKEND", "s3")])
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("datastore.s3.endpoint"), "{error}");
    let error = load(&[], &[("CONDUCTOR__DATASTORE__URL_TTL", "3days")])
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("datastore.url_ttl"), "{error}");
}

#[test]
fn the_original_elasticsearch_variables_select_opensearch() {
    let settings = load(
        &[],
        &[
            ("OS_ELASTICSEARCH_ADDRESS", "elasticsearch:9200"),
            ("OS_ES_PACKAGES_INDEX_NAME", "packages-v2"),
        ],
    );
    let settings = settings.unwrap();
    assert_eq!(settings.search.backend, SearchBackend::OpenSearch);
    assert_eq!(
        settings.search.opensearch.url.unwrap().as_str(),
        "http://elasticsearch:9200/"
    );
    assert_eq!(settings.search.opensearch.index, "packages-v2");
    let error = load(&[], &[("CONDUCTOR__SEARCH__BACKEND", "opensearch")])
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("search.opensearch.url"), "{error}");
    let error = load(&[], &[("CONDUCTOR__SEARCH__OPENSEARCH__INDEX", "Bad/Name")])
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("search.opensearch.index"), "{error}");
}
