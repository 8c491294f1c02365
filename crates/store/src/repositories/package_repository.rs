//! `PackageRepository` on diesel, `/package/stats` counts included. Expanded once per connection type by `impl_for_connection!` in `mod.rs`, whose
//! imports the expansion uses.

macro_rules! impl_packages {
    ($conn:ty) => {
        #[async_trait]
        impl PackageRepository for Db<$conn> {
            async fn get(&self, id: &PackageId) -> RepoResult<Option<PackageRecord>> {
                let id = id.to_string();
                self.run(move |conn: &mut $conn| {
                    packages::table
                        .find(id)
                        .select(PackageRow::as_select())
                        .first(conn)
                        .optional()
                        .map_err(query_error)?
                        .map(PackageRow::into_record)
                        .transpose()
                })
                .await
            }

            async fn get_many(&self, ids: &[PackageId]) -> RepoResult<Vec<PackageRecord>> {
                let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                self.run(move |conn: &mut $conn| {
                    let mut records = Vec::with_capacity(ids.len());
                    // Chunks keep each statement under SQLite's bound-parameter limit.
                    for chunk in ids.chunks(500) {
                        let rows = packages::table
                            .filter(packages::id.eq_any(chunk))
                            .select(PackageRow::as_select())
                            .load(conn)
                            .map_err(query_error)?;
                        for row in rows {
                            records.push(row.into_record()?);
                        }
                    }
                    Ok(records)
                })
                .await
            }

            async fn put(&self, record: &PackageRecord) -> RepoResult<()> {
                let row = PackageRow::from_record(record)?;
                self.write(move |conn: &mut $conn| {
                    diesel::insert_into(packages::table)
                        .values(&row)
                        .on_conflict(packages::id)
                        .do_update()
                        .set(&row)
                        .execute(conn)
                        .map(drop)
                        .map_err(query_error)
                })
                .await
            }

            async fn delete(&self, id: &PackageId) -> RepoResult<bool> {
                let id = id.to_string();
                self.write(move |conn: &mut $conn| {
                    diesel::delete(packages::table.find(id))
                        .execute(conn)
                        .map(|n| n > 0)
                        .map_err(query_error)
                })
                .await
            }

            async fn page(&self, after: Option<&PackageId>, limit: usize) -> RepoResult<Vec<PackageRecord>> {
                let after = after.map(ToString::to_string);
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                self.run(move |conn: &mut $conn| {
                    let mut query = packages::table
                        .select(PackageRow::as_select())
                        .order(packages::id)
                        .limit(limit)
                        .into_boxed();
                    if let Some(after) = after {
                        query = query.filter(packages::id.gt(after));
                    }
                    query
                        .load(conn)
                        .map_err(query_error)?
                        .into_iter()
                        .map(PackageRow::into_record)
                        .collect()
                })
                .await
            }

            async fn counts(&self) -> RepoResult<RegistryCounts> {
                use diesel::sql_types::{BigInt, Nullable};
                self.run(move |conn: &mut $conn| {
                    // SUM of a BIGINT is NUMERIC on PostgreSQL; cast it back on both backends.
                    let (count, rows): (i64, Option<i64>) = packages::table
                        .select((
                            diesel::dsl::count_star(),
                            diesel::dsl::sql::<Nullable<BigInt>>("CAST(SUM(count_of_rows) AS BIGINT)"),
                        ))
                        .first(conn)
                        .map_err(query_error)?;
                    let code_lists: Vec<Option<String>> = packages::table
                        .select(packages::country_codes)
                        .filter(packages::country_codes.is_not_null())
                        .distinct()
                        .load(conn)
                        .map_err(query_error)?;
                    let mut countries = std::collections::BTreeSet::new();
                    for list in code_lists.iter().flatten() {
                        let codes: Vec<String> =
                            serde_json::from_str(list).map_err(|e| corrupt("packages", e))?;
                        countries.extend(codes);
                    }
                    Ok(RegistryCounts {
                        packages: u64::try_from(count).unwrap_or(0),
                        rows: rows.and_then(|r| u64::try_from(r).ok()).unwrap_or(0),
                        countries: countries.len() as u64,
                    })
                })
                .await
            }
        }
    };
}
