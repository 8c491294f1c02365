//! `ApiKeyRepository` on diesel. Expanded once per connection type by `impl_for_connection!` in `mod.rs`, whose
//! imports the expansion uses.

macro_rules! impl_api_keys {
    ($conn:ty) => {
        #[async_trait]
        impl ApiKeyRepository for Db<$conn> {
            async fn create(&self, key: &ApiKey) -> RepoResult<()> {
                let row = ApiKeyRow::from_key(key)?;
                self.write(move |conn: &mut $conn| {
                    diesel::insert_into(api_keys::table)
                        .values(&row)
                        .execute(conn)
                        .map(drop)
                        .map_err(query_error)
                })
                .await
            }

            async fn get(&self, id: &str) -> RepoResult<Option<ApiKey>> {
                let id = id.to_owned();
                self.run(move |conn: &mut $conn| {
                    api_keys::table
                        .find(id)
                        .select(ApiKeyRow::as_select())
                        .first(conn)
                        .optional()
                        .map_err(query_error)?
                        .map(ApiKeyRow::into_key)
                        .transpose()
                })
                .await
            }

            async fn list(&self, owner: Option<&UserId>) -> RepoResult<Vec<ApiKey>> {
                let owner = owner.map(|o| o.as_str().to_owned());
                self.run(move |conn: &mut $conn| {
                    let mut query = api_keys::table.select(ApiKeyRow::as_select()).into_boxed();
                    if let Some(owner) = owner {
                        query = query.filter(api_keys::owner.eq(owner));
                    }
                    query
                        .order((api_keys::created_at.desc(), api_keys::id))
                        .load(conn)
                        .map_err(query_error)?
                        .into_iter()
                        .map(ApiKeyRow::into_key)
                        .collect()
                })
                .await
            }

            async fn revoke(&self, id: &str, owner: Option<&UserId>, now: Timestamp) -> RepoResult<bool> {
                let id = id.to_owned();
                let owner = owner.map(|o| o.as_str().to_owned());
                self.write(move |conn: &mut $conn| {
                    let mut update = diesel::update(api_keys::table)
                        .filter(api_keys::id.eq(id))
                        .filter(api_keys::revoked_at.is_null())
                        .into_boxed();
                    if let Some(owner) = owner {
                        update = update.filter(api_keys::owner.eq(owner));
                    }
                    update
                        .set(api_keys::revoked_at.eq(now.as_millis()))
                        .execute(conn)
                        .map(|n| n > 0)
                        .map_err(query_error)
                })
                .await
            }

            async fn count_live(&self, owner: &UserId, now: Timestamp) -> RepoResult<u64> {
                let owner = owner.as_str().to_owned();
                self.run(move |conn: &mut $conn| {
                    api_keys::table
                        .filter(api_keys::owner.eq(owner))
                        .filter(api_keys::revoked_at.is_null())
                        .filter(
                            api_keys::expires_at
                                .is_null()
                                .or(api_keys::expires_at.gt(now.as_millis())),
                        )
                        .count()
                        .get_result::<i64>(conn)
                        .map(|n| n.max(0) as u64)
                        .map_err(query_error)
                })
                .await
            }

            async fn touch(&self, id: &str, now: Timestamp, coarser_than: i64) -> RepoResult<()> {
                let id = id.to_owned();
                let before = now.as_millis() - coarser_than;
                self.write(move |conn: &mut $conn| {
                    diesel::update(api_keys::table)
                        .filter(api_keys::id.eq(id))
                        .filter(
                            api_keys::last_used_at
                                .is_null()
                                .or(api_keys::last_used_at.lt(before)),
                        )
                        .set(api_keys::last_used_at.eq(now.as_millis()))
                        .execute(conn)
                        .map(drop)
                        .map_err(query_error)
                })
                .await
            }
        }
    };
}
