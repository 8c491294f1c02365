//! The configuration layers, in order, and errors that name the key and the layer they came from.

use super::*;

const ENV_PREFIX: &str = "CONDUCTOR";
const ENV_SEPARATOR: &str = "__";
/// Keys whose `CONDUCTOR__` variable is a comma-separated list.
const LIST_KEYS: &[&str] = &[
    "server.cors.allowed_origins",
    "auth.redirect_allowlist",
    "auth.keys.retired_public_key_files",
    "datastore.allowed_types",
];

/// One configuration layer: its name in error messages, and the source it reads.
pub(super) struct Layer {
    pub(super) name: String,
    pub(super) source: Box<dyn config::Source + Send + Sync>,
    pub(super) from_conductor_variables: bool,
}

pub(super) fn layers(config_dir: &Path, env: &Environment) -> Result<Vec<Layer>, SettingsError> {
    let file = |path: PathBuf, required: bool| Layer {
        name: path.display().to_string(),
        source: Box::new(File::from(path).format(FileFormat::Toml).required(required)),
        from_conductor_variables: false,
    };
    let mut layers = vec![
        file(config_dir.join("default.toml"), false),
        file(config_dir.join(format!("{}.toml", env.profile())), false),
        file(config_dir.join("local.toml"), false),
    ];
    if let Some(path) = env.get("CONDUCTOR_CONFIG") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(SettingsError::Layer {
                layer: format!("CONDUCTOR_CONFIG={}", path.display()),
                message: "no such file".into(),
            });
        }
        layers.push(file(path, true));
    }
    layers.push(Layer {
        name: "the original OS_* variables".into(),
        source: Box::new(super::original::original_variables(env)?),
        from_conductor_variables: false,
    });
    let ours: config::Map<String, String> = env
        .vars
        .iter()
        .filter(|(k, _)| k.starts_with("CONDUCTOR__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut environment = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator(ENV_SEPARATOR)
        .separator(ENV_SEPARATOR)
        .try_parsing(true)
        .list_separator(",");
    for key in LIST_KEYS {
        environment = environment.with_list_parse_key(key);
    }
    layers.push(Layer {
        name: "CONDUCTOR__* variables".into(),
        source: Box::new(environment.source(Some(ours))),
        from_conductor_variables: true,
    });
    Ok(layers)
}

/// A config error as a deployer wants to read it: the full key, and for a `CONDUCTOR__` layer the variable.
pub(super) fn describe(error: &ConfigError, layer: &Layer) -> String {
    let (message, key) = match error {
        ConfigError::At {
            error: inner,
            key,
            origin,
        } => match unknown_field(inner) {
            Some((field, expected)) => {
                let full = key
                    .as_deref()
                    .map_or_else(|| field.to_owned(), |k| format!("{k}.{field}"));
                let from = origin.as_deref().map(|o| format!(" in {o}")).unwrap_or_default();
                (format!("unknown key `{full}`{from};{expected}"), Some(full))
            }
            None => (error.to_string(), key.clone()),
        },
        ConfigError::Message(_) => match unknown_field(error) {
            Some((field, expected)) => (
                format!("unknown key `{field}`;{expected}"),
                Some(field.to_owned()),
            ),
            None => (error.to_string(), None),
        },
        ConfigError::Type { key, .. } => (error.to_string(), key.clone()),
        other => (other.to_string(), None),
    };
    match key {
        Some(key) if layer.from_conductor_variables => format!("{message} (set by {})", variable_for(&key)),
        _ => message,
    }
}

/// serde's "unknown field `x`, expected …" as (`x`, " expected …").
fn unknown_field(error: &ConfigError) -> Option<(&str, &str)> {
    let ConfigError::Message(message) = error else {
        return None;
    };
    let (field, expected) = message.strip_prefix("unknown field `")?.split_once('`')?;
    Some((field, expected.trim_start_matches(',')))
}

/// The `CONDUCTOR__` variable that sets `key`.
fn variable_for(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{ENV_SEPARATOR}{}",
        key.replace('.', ENV_SEPARATOR).to_uppercase()
    )
}
