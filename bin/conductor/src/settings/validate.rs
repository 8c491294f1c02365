//! The checks a merged configuration must pass beyond its types, each naming the key it is about.

use super::*;

impl Settings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if !matches!(self.server.base_url.scheme(), "http" | "https") || self.server.base_url.host().is_none()
        {
            return Err(SettingsError::Invalid {
                key: "server.base_url",
                message: format!("must be an http(s) URL with a host, got {}", self.server.base_url),
            });
        }
        if self.server.body_limit.as_u64() == 0 {
            return Err(SettingsError::Invalid {
                key: "server.body_limit",
                message: "must be above zero".into(),
            });
        }
        if self.database.pool_size == 0 {
            return Err(SettingsError::Invalid {
                key: "database.pool_size",
                message: "must be at least 1".into(),
            });
        }
        conductor_store::DatabaseUrl::parse(self.database_url().expose()).map_err(|e| {
            SettingsError::Invalid {
                key: "database.url",
                message: e.to_string(),
            }
        })?;
        if let Some(redis) = &self.cache.redis_url
            && !matches!(
                Url::parse(redis.expose())
                    .map(|u| u.scheme().to_owned())
                    .as_deref(),
                Ok("redis" | "rediss")
            )
        {
            return Err(SettingsError::Invalid {
                key: "cache.redis_url",
                message: format!("must be a redis:// or rediss:// URL, got {}", redis.redacted()),
            });
        }
        self.cors_origins()?;
        self.validate_auth()?;
        self.validate_datastore()?;
        self.validate_loader()?;
        self.validate_search()
    }

    fn validate_loader(&self) -> Result<(), SettingsError> {
        let invalid = |key: &'static str, message: String| SettingsError::Invalid { key, message };
        if self.loader.heartbeat_timeout < std::time::Duration::from_secs(1) {
            return Err(invalid("loader.heartbeat_timeout", "must be at least 1s".into()));
        }
        for entry in &self.loader.fetch_allowlist {
            loader::check_prefix(entry).map_err(|m| invalid("loader.fetch_allowlist", m))?;
        }
        for entry in &self.loader.hook_allowlist {
            loader::check_prefix(entry).map_err(|m| invalid("loader.hook_allowlist", m))?;
        }
        Ok(())
    }

    fn validate_search(&self) -> Result<(), SettingsError> {
        let invalid = |key: &'static str, message: String| SettingsError::Invalid { key, message };
        if self.search.max_size == 0 {
            return Err(invalid("search.max_size", "must be at least 1".into()));
        }
        if self.search.backend == SearchBackend::OpenSearch && self.search.opensearch.url.is_none() {
            return Err(invalid(
                "search.opensearch.url",
                "is required when search.backend = \"opensearch\"".into(),
            ));
        }
        // OpenSearch's index naming rules: lower case, no path or wildcard characters, no leading _ - +.
        let index = &self.search.opensearch.index;
        let forbidden = |c: char| c.is_ascii_uppercase() || "\\/*?\"<>| ,#:".contains(c);
        if index.is_empty() || index.starts_with(['_', '-', '+']) || index.chars().any(forbidden) {
            return Err(invalid(
                "search.opensearch.index",
                format!("{index:?} is not an index name"),
            ));
        }
        Ok(())
    }

    fn validate_datastore(&self) -> Result<(), SettingsError> {
        let datastore = &self.datastore;
        let invalid = |key: &'static str, message: &str| SettingsError::Invalid {
            key,
            message: message.to_owned(),
        };
        if datastore.url_ttl.is_zero() || datastore.url_ttl > std::time::Duration::from_secs(3600) {
            return Err(invalid("datastore.url_ttl", "must be above zero and at most 1h"));
        }
        if datastore.max_file_size.as_u64() == 0 {
            return Err(invalid("datastore.max_file_size", "must be above zero"));
        }
        if datastore.allowed_types.is_empty() {
            return Err(invalid(
                "datastore.allowed_types",
                "must list at least one content type",
            ));
        }
        if datastore.backend == DatastoreBackend::S3 {
            let s3 = &datastore.s3;
            for (key, missing) in [
                ("datastore.s3.endpoint", s3.endpoint.is_none()),
                (
                    "datastore.s3.bucket",
                    s3.bucket.as_deref().is_none_or(str::is_empty),
                ),
                (
                    "datastore.s3.access_key",
                    s3.access_key.as_deref().is_none_or(str::is_empty),
                ),
                ("datastore.s3.secret_key", s3.secret_key.is_none()),
            ] {
                if missing {
                    return Err(invalid(key, "is required when datastore.backend = \"s3\""));
                }
            }
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), SettingsError> {
        let auth = &self.auth;
        let invalid = |key: &'static str, message: String| SettingsError::Invalid { key, message };
        self.redirect_allowlist()?;
        for (key, ttl) in [
            ("auth.user_token_ttl", auth.user_token_ttl),
            ("auth.permission_token_ttl", auth.permission_token_ttl),
        ] {
            if ttl.is_zero() {
                return Err(invalid(key, "must be above zero".into()));
            }
        }
        for (name, provider) in &auth.providers {
            let valid_name = !name.is_empty()
                && name.len() <= 40
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
            if !valid_name || name == conductor_auth::DEV_PROVIDER {
                return Err(invalid(
                    "auth.providers",
                    format!("{name:?} is not a provider name: use a-z, 0-9, '-' and '_' (and not \"dev\")"),
                ));
            }
            if provider.client_secret.is_some() && provider.client_secret_file.is_some() {
                return Err(invalid(
                    "auth.providers",
                    format!("{name}: set client_secret or client_secret_file, not both"),
                ));
            }
            if !provider.scopes.iter().any(|s| s == "openid") {
                return Err(invalid(
                    "auth.providers",
                    format!("{name}: scopes must include \"openid\""),
                ));
            }
        }
        if self.is_production() {
            if auth.dev_login {
                return Err(invalid(
                    "auth.dev_login",
                    "the dev provider cannot be enabled in production".into(),
                ));
            }
            if !auth.keys.is_configured() {
                return Err(invalid(
                    "auth.keys",
                    "production needs a signing key: set auth.keys.private_key_file (or OS_CONDUCTOR_SECRETS_0..3)".into(),
                ));
            }
        }
        Ok(())
    }
}
