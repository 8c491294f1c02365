//! `LoadJobRepository` on diesel: claims with `FOR UPDATE SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite. Expanded once per connection type by `impl_for_connection!` in `mod.rs`, whose
//! imports the expansion uses.

macro_rules! impl_load_jobs {
    ($conn:ty, claim_lock: $claim_lock:expr, transaction: $transaction:ident) => {
        impl Db<$conn> {
            async fn insert_job(
                &self,
                job: &NewLoadJob,
                status: LoadStatus,
                now: Timestamp,
            ) -> RepoResult<LoadJob> {
                let row = NewLoadJobRow {
                    package_id: job.package_id.to_string(),
                    datapackage_url: job.datapackage_url.clone(),
                    owner: job.owner.as_str().to_owned(),
                    status: status.as_str().to_owned(),
                    rows_loaded: 0,
                    created_at: now.as_millis(),
                    updated_at: now.as_millis(),
                };
                self.write(move |conn: &mut $conn| {
                    diesel::insert_into(load_jobs::table)
                        .values(&row)
                        .returning(LoadJobRow::as_returning())
                        .get_result(conn)
                        .map_err(query_error)?
                        .into_job()
                })
                .await
            }
        }

        #[async_trait]
        impl LoadJobRepository for Db<$conn> {
            async fn enqueue(&self, job: &NewLoadJob, now: Timestamp) -> RepoResult<LoadJob> {
                self.insert_job(job, LoadStatus::Queued, now).await
            }

            async fn enqueue_claimed(&self, job: &NewLoadJob, now: Timestamp) -> RepoResult<LoadJob> {
                self.insert_job(job, LoadStatus::Initializing, now).await
            }

            async fn get(&self, id: i64) -> RepoResult<Option<LoadJob>> {
                self.run(move |conn: &mut $conn| {
                    load_jobs::table
                        .find(id)
                        .select(LoadJobRow::as_select())
                        .first(conn)
                        .optional()
                        .map_err(query_error)?
                        .map(LoadJobRow::into_job)
                        .transpose()
                })
                .await
            }

            async fn latest_for_url(&self, datapackage_url: &str) -> RepoResult<Option<LoadJob>> {
                let url = datapackage_url.to_owned();
                self.run(move |conn: &mut $conn| {
                    load_jobs::table
                        .filter(load_jobs::datapackage_url.eq(url))
                        .order(load_jobs::id.desc())
                        .select(LoadJobRow::as_select())
                        .first(conn)
                        .optional()
                        .map_err(query_error)?
                        .map(LoadJobRow::into_job)
                        .transpose()
                })
                .await
            }

            async fn record_progress(
                &self,
                id: i64,
                progress: &JobProgress,
                now: Timestamp,
            ) -> RepoResult<bool> {
                let progress = progress.clone();
                self.write(move |conn: &mut $conn| {
                    let terminal = [LoadStatus::Done.as_str(), LoadStatus::Fail.as_str()];
                    diesel::update(
                        load_jobs::table
                            .find(id)
                            .filter(load_jobs::status.ne_all(terminal)),
                    )
                    .set((
                        load_jobs::status.eq(progress.status.as_str()),
                        load_jobs::rows_loaded.eq(progress.rows_loaded),
                        load_jobs::rows_total.eq(progress.rows_total),
                        load_jobs::error.eq(progress.error),
                        load_jobs::heartbeat_at.eq(Some(now.as_millis())),
                        load_jobs::updated_at.eq(now.as_millis()),
                    ))
                    .execute(conn)
                    .map(|n| n == 1)
                    .map_err(query_error)
                })
                .await
            }

            async fn claim(&self, now: Timestamp) -> RepoResult<Option<LoadJob>> {
                self.write(move |conn: &mut $conn| {
                    conn.$transaction(|conn| {
                        let candidate: Option<IdRow> =
                            diesel::sql_query(format!("{CLAIM_CANDIDATE} {}", $claim_lock))
                                .get_result(conn)
                                .optional()?;
                        let Some(candidate) = candidate else {
                            return Ok(None);
                        };
                        diesel::update(
                            load_jobs::table
                                .find(candidate.id)
                                .filter(load_jobs::status.eq(LoadStatus::Queued.as_str())),
                        )
                        .set((
                            load_jobs::status.eq(LoadStatus::Initializing.as_str()),
                            load_jobs::heartbeat_at.eq(Some(now.as_millis())),
                            load_jobs::updated_at.eq(now.as_millis()),
                        ))
                        .returning(LoadJobRow::as_returning())
                        .get_result(conn)
                        .optional()
                    })
                    .map_err(query_error)?
                    .map(LoadJobRow::into_job)
                    .transpose()
                })
                .await
            }

            async fn unfinished_for_package(&self, package: &PackageId) -> RepoResult<Option<LoadJob>> {
                let package = package.to_string();
                self.run(move |conn: &mut $conn| {
                    let terminal = [LoadStatus::Done.as_str(), LoadStatus::Fail.as_str()];
                    load_jobs::table
                        .filter(load_jobs::package_id.eq(package))
                        .filter(load_jobs::status.ne_all(terminal))
                        .order(load_jobs::id.desc())
                        .select(LoadJobRow::as_select())
                        .first(conn)
                        .optional()
                        .map_err(query_error)?
                        .map(LoadJobRow::into_job)
                        .transpose()
                })
                .await
            }

            async fn beat(&self, id: i64, now: Timestamp) -> RepoResult<bool> {
                self.write(move |conn: &mut $conn| {
                    let terminal = [LoadStatus::Done.as_str(), LoadStatus::Fail.as_str()];
                    diesel::update(
                        load_jobs::table
                            .find(id)
                            .filter(load_jobs::status.ne_all(terminal)),
                    )
                    .set(load_jobs::heartbeat_at.eq(Some(now.as_millis())))
                    .execute(conn)
                    .map(|n| n == 1)
                    .map_err(query_error)
                })
                .await
            }

            async fn requeue(&self, id: i64, now: Timestamp) -> RepoResult<bool> {
                self.write(move |conn: &mut $conn| {
                    let terminal = [LoadStatus::Done.as_str(), LoadStatus::Fail.as_str()];
                    diesel::update(
                        load_jobs::table
                            .find(id)
                            .filter(load_jobs::status.ne_all(terminal)),
                    )
                    .set((
                        load_jobs::status.eq(LoadStatus::Queued.as_str()),
                        load_jobs::rows_loaded.eq(0),
                        load_jobs::rows_total.eq(None::<i64>),
                        load_jobs::error.eq(None::<String>),
                        load_jobs::heartbeat_at.eq(None::<i64>),
                        load_jobs::updated_at.eq(now.as_millis()),
                    ))
                    .execute(conn)
                    .map(|n| n == 1)
                    .map_err(query_error)
                })
                .await
            }

            async fn fail_stale(
                &self,
                before: Timestamp,
                error: &str,
                now: Timestamp,
            ) -> RepoResult<Vec<LoadJob>> {
                let error = error.to_owned();
                self.write(move |conn: &mut $conn| {
                    let settled = [
                        LoadStatus::Queued.as_str(),
                        LoadStatus::Done.as_str(),
                        LoadStatus::Fail.as_str(),
                    ];
                    diesel::update(
                        load_jobs::table
                            .filter(load_jobs::status.ne_all(settled))
                            // A claimed job that never beat counts from its last update.
                            .filter(
                                load_jobs::heartbeat_at
                                    .lt(before.as_millis())
                                    .or(load_jobs::heartbeat_at
                                        .is_null()
                                        .and(load_jobs::updated_at.lt(before.as_millis()))),
                            ),
                    )
                    .set((
                        load_jobs::status.eq(LoadStatus::Fail.as_str()),
                        load_jobs::error.eq(Some(error)),
                        load_jobs::updated_at.eq(now.as_millis()),
                    ))
                    .returning(LoadJobRow::as_returning())
                    .get_results(conn)
                    .map_err(query_error)?
                    .into_iter()
                    .map(LoadJobRow::into_job)
                    .collect()
                })
                .await
            }
        }
    };
}
