//! Clearing os-api's cache of a package in Redis, exactly as os-api-cache's `clear` does (reference §5): the item
//! keys of a package are the members of the set `ctx:<JSON of the id>` in database 1; pop each and delete it.

use std::time::Duration;

use async_trait::async_trait;
use conductor_core::PackageId;
use conductor_loader::ApiCache;

/// How long one clear may take before it counts as failed (a load never waits on a dead cache for long).
const CLEAR_TIMEOUT: Duration = Duration::from_secs(10);

/// os-api-cache's database index.
const OS_API_CACHE_DB: &str = "1";

#[derive(Clone)]
pub struct RedisApiCache {
    client: redis::Client,
}

impl std::fmt::Debug for RedisApiCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisApiCache").finish_non_exhaustive()
    }
}

impl RedisApiCache {
    /// `url` is `cache.redis_url`; without a database in its path, os-api's database 1 is used.
    pub fn new(url: &str) -> Result<Self, String> {
        let mut parsed = url::Url::parse(url).map_err(|e| format!("cache.redis_url: {e}"))?;
        if matches!(parsed.path(), "" | "/") {
            parsed.set_path(OS_API_CACHE_DB);
        }
        let client = redis::Client::open(parsed.as_str()).map_err(|e| format!("cache.redis_url: {e}"))?;
        Ok(Self { client })
    }

    async fn clear_now(&self, package: &PackageId) -> redis::RedisResult<u64> {
        let mut conn = self.client.get_multiplexed_async_connection().await?;
        let set = context_key(package);
        let mut cleared = 0;
        while let Some(member) = redis::cmd("SPOP")
            .arg(&set)
            .query_async::<Option<Vec<u8>>>(&mut conn)
            .await?
        {
            redis::cmd("DEL").arg(member).query_async::<()>(&mut conn).await?;
            cleared += 1;
        }
        Ok(cleared)
    }
}

/// `"ctx:" + json.dumps(id)`: the id as a JSON string, quotes included.
pub fn context_key(package: &PackageId) -> String {
    format!("ctx:{}", serde_json::Value::String(package.to_string()))
}

#[async_trait]
impl ApiCache for RedisApiCache {
    async fn clear(&self, package: &PackageId) -> Result<u64, String> {
        match tokio::time::timeout(CLEAR_TIMEOUT, self.clear_now(package)).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("Redis did not answer within {CLEAR_TIMEOUT:?}")),
        }
    }
}
