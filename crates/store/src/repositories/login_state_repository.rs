//! `LoginStateRepository` on diesel. Expanded once per connection type by `impl_for_connection!` in `mod.rs`, whose
//! imports the expansion uses.

macro_rules! impl_login_states {
    ($conn:ty) => {
        #[async_trait]
        impl LoginStateRepository for Db<$conn> {
            async fn put(&self, state: &LoginState) -> RepoResult<()> {
                let row = LoginStateRow::from(state);
                self.write(move |conn: &mut $conn| {
                    diesel::insert_into(login_states::table)
                        .values(&row)
                        .execute(conn)
                        .map(drop)
                        .map_err(query_error)
                })
                .await
            }

            async fn take(&self, state: &str, now: Timestamp) -> RepoResult<Option<LoginState>> {
                let state = state.to_owned();
                self.write(move |conn: &mut $conn| {
                    // DELETE ... RETURNING makes redemption atomic: two callbacks racing get one row between them.
                    let row = diesel::delete(login_states::table.find(state))
                        .returning(LoginStateRow::as_returning())
                        .get_result(conn)
                        .optional()
                        .map_err(query_error)?;
                    Ok(row
                        .filter(|r| r.expires_at > now.as_millis())
                        .map(LoginState::from))
                })
                .await
            }

            async fn purge_expired(&self, now: Timestamp) -> RepoResult<u64> {
                self.write(move |conn: &mut $conn| {
                    diesel::delete(login_states::table.filter(login_states::expires_at.le(now.as_millis())))
                        .execute(conn)
                        .map(|n| n as u64)
                        .map_err(query_error)
                })
                .await
            }
        }
    };
}
