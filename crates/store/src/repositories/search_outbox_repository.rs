//! `SearchOutboxRepository` on diesel. Expanded once per connection type by `impl_for_connection!` in `mod.rs`, whose
//! imports the expansion uses.

macro_rules! impl_search_outbox {
    ($conn:ty) => {
        #[async_trait]
        impl SearchOutboxRepository for Db<$conn> {
            async fn push(&self, package_id: &PackageId, now: Timestamp) -> RepoResult<()> {
                let package_id = package_id.to_string();
                self.write(move |conn: &mut $conn| {
                    diesel::insert_into(search_outbox::table)
                        .values((
                            search_outbox::package_id.eq(package_id),
                            search_outbox::created_at.eq(now.as_millis()),
                        ))
                        .execute(conn)
                        .map(drop)
                        .map_err(query_error)
                })
                .await
            }

            async fn pending(&self, limit: i64) -> RepoResult<Vec<OutboxEntry>> {
                self.run(move |conn: &mut $conn| {
                    let rows: Vec<(i64, String, i32)> = search_outbox::table
                        .order(search_outbox::id)
                        .limit(limit)
                        .select((
                            search_outbox::id,
                            search_outbox::package_id,
                            search_outbox::attempts,
                        ))
                        .load(conn)
                        .map_err(query_error)?;
                    rows.into_iter()
                        .map(|(id, package_id, attempts)| {
                            let package_id = PackageId::parse(&package_id)
                                .map_err(|e| RepoError::Corrupt(format!("search_outbox: {e}")))?;
                            Ok(OutboxEntry {
                                id,
                                package_id,
                                attempts,
                            })
                        })
                        .collect()
                })
                .await
            }

            async fn done(&self, id: i64) -> RepoResult<()> {
                self.write(move |conn: &mut $conn| {
                    diesel::delete(search_outbox::table.find(id))
                        .execute(conn)
                        .map(drop)
                        .map_err(query_error)
                })
                .await
            }

            async fn failed(&self, id: i64, error: &str) -> RepoResult<()> {
                let error = error.chars().take(1000).collect::<String>();
                self.write(move |conn: &mut $conn| {
                    diesel::update(search_outbox::table.find(id))
                        .set((
                            search_outbox::attempts.eq(search_outbox::attempts + 1),
                            search_outbox::last_error.eq(error),
                        ))
                        .execute(conn)
                        .map(drop)
                        .map_err(query_error)
                })
                .await
            }
        }
    };
}
