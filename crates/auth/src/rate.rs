//! Rate limits on API keys (DESIGN §5): uses per key and failed attempts per client address, counted in fixed
//! windows. The counter is a port: in process by default ([`LocalRates`]); in Redis for replicas, so a limit
//! holds across every gateway (`conductor-store`'s `RedisRates`).

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use conductor_core::Timestamp;
use lru::LruCache;

/// Counts events per bucket in fixed windows.
#[async_trait]
pub trait RateCounter: Send + Sync {
    /// Adds one event to `bucket` in the window of `window` that holds `now`, and returns the window's count.
    async fn count(&self, bucket: &str, window: Duration, now: Timestamp) -> Result<u64, String>;
    /// The count so far in that window, without adding one.
    async fn current(&self, bucket: &str, window: Duration, now: Timestamp) -> Result<u64, String>;
}

/// The window `now` falls in, and how long until the next one starts.
pub fn window_of(window: Duration, now: Timestamp) -> (i64, Duration) {
    let length = i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1);
    let millis = now.as_millis();
    let index = millis.div_euclid(length);
    let left = length - millis.rem_euclid(length);
    (index, Duration::from_millis(u64::try_from(left).unwrap_or(0)))
}

/// Buckets kept in process: the least recently counted go first once this many are held, so a flood of
/// addresses costs a bounded amount of memory.
const LOCAL_BUCKETS: usize = 65_536;

/// The in-process counter: right for one gateway; each replica counts on its own.
pub struct LocalRates {
    buckets: Mutex<LruCache<String, (i64, u64)>>,
}

impl std::fmt::Debug for LocalRates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRates").finish_non_exhaustive()
    }
}

impl Default for LocalRates {
    fn default() -> Self {
        let capacity = NonZeroUsize::new(LOCAL_BUCKETS).unwrap_or(NonZeroUsize::MIN);
        Self {
            buckets: Mutex::new(LruCache::new(capacity)),
        }
    }
}

impl LocalRates {
    fn add(&self, bucket: &str, window: Duration, now: Timestamp, add: u64) -> u64 {
        let (index, _) = window_of(window, now);
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match buckets.get_mut(bucket) {
            Some((at, count)) if *at == index => {
                *count += add;
                *count
            }
            _ if add == 0 => 0,
            _ => {
                buckets.put(bucket.to_owned(), (index, add));
                add
            }
        }
    }
}

#[async_trait]
impl RateCounter for LocalRates {
    async fn count(&self, bucket: &str, window: Duration, now: Timestamp) -> Result<u64, String> {
        Ok(self.add(bucket, window, now, 1))
    }

    async fn current(&self, bucket: &str, window: Duration, now: Timestamp) -> Result<u64, String> {
        Ok(self.add(bucket, window, now, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_reset_with_each_window() {
        let rates = LocalRates::default();
        let minute = Duration::from_secs(60);
        let at = |s: i64| Timestamp::from_millis(s * 1000);
        assert_eq!(rates.current("k", minute, at(0)).await.unwrap(), 0);
        assert_eq!(rates.count("k", minute, at(1)).await.unwrap(), 1);
        assert_eq!(rates.count("k", minute, at(59)).await.unwrap(), 2);
        assert_eq!(rates.current("k", minute, at(59)).await.unwrap(), 2);
        assert_eq!(rates.count("other", minute, at(59)).await.unwrap(), 1);
        assert_eq!(rates.count("k", minute, at(60)).await.unwrap(), 1, "a new window");
        assert_eq!(window_of(minute, at(90)).1, Duration::from_secs(30));
    }
}
