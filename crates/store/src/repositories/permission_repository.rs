//! `PermissionRepository` on diesel. Expanded once per connection type by `impl_for_connection!` in `mod.rs`, whose
//! imports the expansion uses.

macro_rules! impl_permissions {
    ($conn:ty) => {
        #[async_trait]
        impl PermissionRepository for Db<$conn> {
            async fn get(&self, grantee: &Grantee, service: &str) -> RepoResult<Option<PermissionGrant>> {
                let key = (grantee.as_str().to_owned(), service.to_owned());
                self.run(move |conn: &mut $conn| {
                    permissions::table
                        .find(key)
                        .select(PermissionRow::as_select())
                        .first(conn)
                        .optional()
                        .map_err(query_error)?
                        .map(PermissionRow::into_grant)
                        .transpose()
                })
                .await
            }

            async fn for_user(&self, user: &UserId, service: &str) -> RepoResult<Vec<PermissionGrant>> {
                let grantees = [Grantee::EVERYONE.to_owned(), user.as_str().to_owned()];
                let service = service.to_owned();
                self.run(move |conn: &mut $conn| {
                    permissions::table
                        .filter(permissions::service.eq(service))
                        .filter(permissions::userid.eq_any(grantees))
                        // '*' sorts before every user id (hex digits).
                        .order(permissions::userid)
                        .select(PermissionRow::as_select())
                        .load(conn)
                        .map_err(query_error)?
                        .into_iter()
                        .map(PermissionRow::into_grant)
                        .collect()
                })
                .await
            }

            async fn put(&self, grant: &PermissionGrant) -> RepoResult<()> {
                let row = PermissionRow::from_grant(grant)?;
                self.write(move |conn: &mut $conn| {
                    diesel::insert_into(permissions::table)
                        .values(&row)
                        .on_conflict((permissions::userid, permissions::service))
                        .do_update()
                        .set(permissions::granted.eq(excluded(permissions::granted)))
                        .execute(conn)
                        .map(drop)
                        .map_err(query_error)
                })
                .await
            }

            async fn delete(&self, grantee: &Grantee, service: &str) -> RepoResult<bool> {
                let key = (grantee.as_str().to_owned(), service.to_owned());
                self.write(move |conn: &mut $conn| {
                    diesel::delete(permissions::table.find(key))
                        .execute(conn)
                        .map(|n| n > 0)
                        .map_err(query_error)
                })
                .await
            }

            async fn list(&self, grantee: Option<&Grantee>) -> RepoResult<Vec<PermissionGrant>> {
                let grantee = grantee.map(|g| g.as_str().to_owned());
                self.run(move |conn: &mut $conn| {
                    let mut query = permissions::table
                        .select(PermissionRow::as_select())
                        .into_boxed();
                    if let Some(grantee) = grantee {
                        query = query.filter(permissions::userid.eq(grantee));
                    }
                    query
                        .order((permissions::userid, permissions::service))
                        .load(conn)
                        .map_err(query_error)?
                        .into_iter()
                        .map(PermissionRow::into_grant)
                        .collect()
                })
                .await
            }
        }
    };
}
