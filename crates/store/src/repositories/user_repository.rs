//! `UserRepository` on diesel. Expanded once per connection type by `impl_for_connection!` in `mod.rs`, whose
//! imports the expansion uses.

macro_rules! impl_users {
    ($conn:ty) => {
        #[async_trait]
        impl UserRepository for Db<$conn> {
            async fn get(&self, id: &UserId) -> RepoResult<Option<Profile>> {
                let id = id.as_str().to_owned();
                self.run(move |conn: &mut $conn| {
                    users::table
                        .find(id)
                        .select(UserRow::as_select())
                        .first(conn)
                        .optional()
                        .map_err(query_error)?
                        .map(UserRow::into_profile)
                        .transpose()
                })
                .await
            }

            async fn upsert_login(&self, user: &NewUser, now: Timestamp) -> RepoResult<Profile> {
                let row = UserRow {
                    idhash: user.idhash.as_str().to_owned(),
                    provider_id: user.provider_id.clone(),
                    name: user.name.clone(),
                    email: user.email.clone(),
                    avatar_url: user.avatar_url.clone(),
                    username: None,
                    join_date: now.as_millis(),
                };
                self.write(move |conn: &mut $conn| {
                    diesel::insert_into(users::table)
                        .values(&row)
                        .on_conflict(users::idhash)
                        .do_update()
                        .set((
                            users::provider_id.eq(excluded(users::provider_id)),
                            users::name.eq(excluded(users::name)),
                            users::email.eq(excluded(users::email)),
                            users::avatar_url.eq(excluded(users::avatar_url)),
                        ))
                        .returning(UserRow::as_returning())
                        .get_result(conn)
                        .map_err(query_error)?
                        .into_profile()
                })
                .await
            }

            async fn set_username(&self, id: &UserId, username: &str) -> RepoResult<UsernameChange> {
                let (id, username) = (id.as_str().to_owned(), username.to_owned());
                self.write(move |conn: &mut $conn| {
                    let current: Option<Option<String>> = users::table
                        .find(&id)
                        .select(users::username)
                        .first(conn)
                        .optional()
                        .map_err(query_error)?;
                    match current {
                        None => return Ok(UsernameChange::NoSuchUser),
                        Some(Some(_)) => return Ok(UsernameChange::AlreadySet),
                        Some(None) => {}
                    }
                    // Guarded by `username IS NULL`, so two concurrent first changes cannot both win.
                    let updated = diesel::update(users::table.find(&id).filter(users::username.is_null()))
                        .set(users::username.eq(&username))
                        .execute(conn);
                    match updated {
                        Ok(1) => Ok(UsernameChange::Set),
                        Ok(_) => Ok(UsernameChange::AlreadySet),
                        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                            Ok(UsernameChange::Taken)
                        }
                        Err(e) => Err(query_error(e)),
                    }
                })
                .await
            }
        }
    };
}
