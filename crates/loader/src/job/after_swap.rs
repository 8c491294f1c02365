//! Writes that must follow a swap: once the new tables are in, the registry record has to follow them, or os-api
//! reads a model naming tables (and columns) the swap replaced. A database that is away (a restart, a failover)
//! is waited for, within a bound; any other failure is tried again twice, a second apart, then reported.

use std::future::Future;
use std::time::Duration;

use conductor_core::repo::RepoError;
use tokio::time::Instant;

/// How long an unavailable database is waited for: a fast restart takes seconds, a managed failover up to a
/// minute. Past it the job fails with the tables swapped in and the previous record kept.
pub(crate) const UNAVAILABLE_PATIENCE: Duration = Duration::from_secs(90);
/// Tries of a write that failed for another reason than the database being away.
const OTHER_FAILURE_RETRIES: u32 = 2;
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const LONGEST_PAUSE: Duration = Duration::from_secs(10);

/// Runs `attempt` (a read or write that must follow a swap) until it succeeds or the policy above gives up,
/// returning its last error.
pub(crate) async fn retry_after_swap<T, F, Fut>(attempt: F) -> Result<T, RepoError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, RepoError>>,
{
    let deadline = Instant::now() + UNAVAILABLE_PATIENCE;
    let mut pause = FIRST_PAUSE;
    let mut other_failures = 0;
    loop {
        let error = match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let (retry, next_pause) = match error {
            RepoError::Unavailable(_) => (Instant::now() + pause <= deadline, (pause * 2).min(LONGEST_PAUSE)),
            _ => {
                other_failures += 1;
                (other_failures <= OTHER_FAILURE_RETRIES, FIRST_PAUSE)
            }
        };
        if !retry {
            return Err(error);
        }
        tracing::warn!(%error, ?pause, "retrying a write after the swap");
        tokio::time::sleep(pause).await;
        pause = next_pause;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// An attempt that fails with `error` the first `failures` times, then answers how many tries it took.
    async fn tries_until_ok(failures: u32, error: fn() -> RepoError) -> (Result<u32, RepoError>, Duration) {
        let tries = AtomicU32::new(0);
        let start = Instant::now();
        let result = retry_after_swap(|| async {
            let n = tries.fetch_add(1, Ordering::SeqCst) + 1;
            if n <= failures { Err(error()) } else { Ok(n) }
        })
        .await;
        (result, start.elapsed())
    }

    fn away() -> RepoError {
        RepoError::Unavailable("terminating connection due to administrator command".into())
    }

    fn broken() -> RepoError {
        RepoError::Query("deadlock detected".into())
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarting_database_is_waited_for() {
        // Ten failures a restart long: 1 + 2 + 4 + 8 + 10 × 6 = 75 s of pauses, within the patience.
        let (result, waited) = tries_until_ok(10, away).await;
        assert_eq!(result.unwrap(), 11);
        assert_eq!(waited, Duration::from_secs(75));
    }

    #[tokio::test(start_paused = true)]
    async fn a_database_away_past_the_patience_fails_the_write() {
        let (result, waited) = tries_until_ok(u32::MAX, away).await;
        assert!(matches!(result, Err(RepoError::Unavailable(_))), "{result:?}");
        assert!(waited <= UNAVAILABLE_PATIENCE, "{waited:?}");
        assert!(waited >= UNAVAILABLE_PATIENCE - LONGEST_PAUSE, "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn another_failure_is_tried_three_times_a_second_apart() {
        let (result, waited) = tries_until_ok(2, broken).await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!(waited, Duration::from_secs(2));
        let (result, waited) = tries_until_ok(3, broken).await;
        assert!(matches!(result, Err(RepoError::Query(_))), "{result:?}");
        assert_eq!(waited, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_success_does_not_wait() {
        let (result, waited) = tries_until_ok(0, away).await;
        assert_eq!(result.unwrap(), 1);
        assert_eq!(waited, Duration::ZERO);
    }
}
