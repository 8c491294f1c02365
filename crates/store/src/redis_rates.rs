//! The API key rate counter in Redis, so every replica counts against the same limits: one key per bucket and
//! window (`conductor:rate:<bucket>:<window>`), incremented and given an expiry in one round trip.

use std::time::Duration;

use async_trait::async_trait;
use conductor_auth::rate::{RateCounter, window_of};
use conductor_core::Timestamp;
use tokio::sync::OnceCell;

/// A counter that cannot answer within this is skipped (the caller then limits nothing) rather than waited on.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

pub struct RedisRates {
    client: redis::Client,
    connection: OnceCell<redis::aio::ConnectionManager>,
}

impl std::fmt::Debug for RedisRates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRates").finish_non_exhaustive()
    }
}

impl RedisRates {
    /// `url` is `cache.redis_url` as given (its database, or 0).
    pub fn new(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("cache.redis_url: {e}"))?;
        Ok(Self {
            client,
            connection: OnceCell::new(),
        })
    }

    async fn connection(&self) -> redis::RedisResult<redis::aio::ConnectionManager> {
        self.connection
            .get_or_try_init(|| redis::aio::ConnectionManager::new(self.client.clone()))
            .await
            .cloned()
    }

    async fn run(&self, bucket: &str, window: Duration, now: Timestamp, add: bool) -> Result<u64, String> {
        let (index, _) = window_of(window, now);
        let key = format!("conductor:rate:{bucket}:{index}");
        let work = async {
            let mut conn = self.connection().await?;
            if add {
                let ttl = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
                let (count,): (u64,) = redis::pipe()
                    .atomic()
                    .incr(&key, 1)
                    .pexpire(&key, i64::try_from(ttl).unwrap_or(i64::MAX))
                    .ignore()
                    .query_async(&mut conn)
                    .await?;
                Ok::<u64, redis::RedisError>(count)
            } else {
                let count: Option<u64> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
                Ok(count.unwrap_or(0))
            }
        };
        match tokio::time::timeout(ANSWER_TIMEOUT, work).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("Redis did not answer within {ANSWER_TIMEOUT:?}")),
        }
    }
}

#[async_trait]
impl RateCounter for RedisRates {
    async fn count(&self, bucket: &str, window: Duration, now: Timestamp) -> Result<u64, String> {
        self.run(bucket, window, now, true).await
    }

    async fn current(&self, bucket: &str, window: Duration, now: Timestamp) -> Result<u64, String> {
        self.run(bucket, window, now, false).await
    }
}
