//! The original service's `OS_*` variables, mapped onto our keys as one layer.

use super::*;

/// The original service's variables, mapped onto our keys (DESIGN §9). Later issues add theirs here.
pub(super) fn original_variables(env: &Environment) -> Result<MappedVariables, SettingsError> {
    let mut values = config::Map::new();
    let mut set = |var: &str, key: &str, value: String| {
        values.insert(key.to_owned(), config::Value::new(Some(&var.to_owned()), value));
    };
    if let Some(url) = env.get("OS_BASE_URL") {
        set("OS_BASE_URL", "server.base_url", url.to_owned());
    }
    if let Some(url) = env.get("OS_CONDUCTOR_ENGINE") {
        set("OS_CONDUCTOR_ENGINE", "database.url", url.to_owned());
    }
    if let Some(host) = env.get("OS_API_CACHE") {
        // The original took a bare host and connected on Redis's default port.
        let url = if host.contains("://") {
            host.to_owned()
        } else {
            format!("redis://{host}:6379")
        };
        set("OS_API_CACHE", "cache.redis_url", url);
    }
    // Setting the original's Elasticsearch address selects the OpenSearch index, as it did.
    if let Some(address) = env.get("OS_ELASTICSEARCH_ADDRESS") {
        let url = if address.contains("://") {
            address.to_owned()
        } else {
            format!("http://{address}")
        };
        set(
            "OS_ELASTICSEARCH_ADDRESS",
            "search.backend",
            "opensearch".to_owned(),
        );
        set("OS_ELASTICSEARCH_ADDRESS", "search.opensearch.url", url);
    }
    if let Some(index) = env.get("OS_ES_PACKAGES_INDEX_NAME") {
        set(
            "OS_ES_PACKAGES_INDEX_NAME",
            "search.opensearch.index",
            index.to_owned(),
        );
    }
    // Setting the original's S3 variables selects the S3 datastore, as they did.
    if let Some(host) = env.get("OS_S3_HOSTNAME") {
        let (endpoint, path_style) = datastore::endpoint_from_original(host, env.get("OS_S3_PORT"));
        set("OS_S3_HOSTNAME", "datastore.backend", "s3".to_owned());
        set("OS_S3_HOSTNAME", "datastore.s3.endpoint", endpoint);
        set(
            "OS_S3_HOSTNAME",
            "datastore.s3.path_style",
            path_style.to_string(),
        );
    }
    for (var, key) in [
        ("OS_STORAGE_BUCKET_NAME", "datastore.s3.bucket"),
        ("OS_ACCESS_KEY_ID", "datastore.s3.access_key"),
        ("OS_SECRET_ACCESS_KEY", "datastore.s3.secret_key"),
    ] {
        if let Some(value) = env.get(var) {
            set(var, key, value.to_owned());
        }
    }
    let pieces: Vec<&str> = (0..conductor_auth::bundle::PIECES)
        .filter_map(|i| env.get(&format!("OS_CONDUCTOR_SECRETS_{i}")))
        .collect();
    if !pieces.is_empty() {
        let bundle = conductor_auth::SecretsBundle::decode(&pieces).map_err(|e| SettingsError::Layer {
            layer: "OS_CONDUCTOR_SECRETS_0..3".into(),
            message: e.to_string(),
        })?;
        let var = "OS_CONDUCTOR_SECRETS";
        set(
            var,
            "auth.keys.private_key_pem",
            bundle.private_pem.expose_secret().to_owned(),
        );
        set(var, "auth.keys.public_key_pem", bundle.public_pem);
        if let (Some(id), Some(secret)) = (bundle.google_client_id, bundle.google_client_secret) {
            set(var, "auth.providers.google.issuer_url", GOOGLE_ISSUER.to_owned());
            set(var, "auth.providers.google.client_id", id);
            set(
                var,
                "auth.providers.google.client_secret",
                secret.expose_secret().to_owned(),
            );
            set(var, "auth.providers.google.display_name", "Google".to_owned());
        }
    }
    Ok(MappedVariables(values))
}

/// A configuration source of already-mapped keys, each value remembering the variable it came from.
#[derive(Clone, Debug)]
pub(super) struct MappedVariables(config::Map<String, config::Value>);

impl config::Source for MappedVariables {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<config::Map<String, config::Value>, ConfigError> {
        Ok(self.0.clone())
    }
}
