//! Health and migrations for one backend (`Maintenance`). Expanded once per connection type by `impl_for_connection!` in `mod.rs`, whose
//! imports the expansion uses.

macro_rules! impl_maintenance {
    ($conn:ty, migrations: $migrations:expr, lock: $lock:expr, unlock: $unlock:expr) => {
        #[async_trait]
        impl Maintenance for Db<$conn> {
            async fn ping(&self, timeout: Duration) -> Result<()> {
                self.run_maintenance(timeout, |conn: &mut $conn| {
                    conn.batch_execute("SELECT 1")
                        .map_err(|e| StoreError::Unavailable(e.to_string()))
                })
                .await
            }

            async fn pending_migrations(&self) -> Result<usize> {
                self.run_maintenance(CONNECTION_WAIT, |conn: &mut $conn| {
                    conn.pending_migrations($migrations)
                        .map(|m| m.len())
                        .map_err(migration_error)
                })
                .await
            }

            async fn migrate(&self) -> Result<Vec<String>> {
                self.run_maintenance(CONNECTION_WAIT, |conn: &mut $conn| {
                    conn.batch_execute($lock).map_err(migration_error)?;
                    let applied = conn
                        .run_pending_migrations($migrations)
                        .map(|versions| versions.iter().map(ToString::to_string).collect())
                        .map_err(migration_error);
                    let unlocked = conn.batch_execute($unlock).map_err(migration_error);
                    let applied = applied?;
                    unlocked?;
                    Ok(applied)
                })
                .await
            }
        }
    };
}
