//! Rebuilding the index while the registry keeps changing.
//!
//! A rebuild reads the registry, fills a fresh index and puts it behind the alias. A write made meanwhile (by this
//! replica or another) went to the index the rebuild replaced, or to the index another replica's rebuild put
//! behind the alias just before, and is lost with it: the soak found packages missing from the index, deleted
//! ones still in it, and old visibility, after three replicas rebuilt a fresh cluster at once. So once the fresh
//! index is in place, the registry is read again: every record changed since the first read is written again,
//! and every document whose record is gone is deleted.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use conductor_core::repo::PackageRepository;
use conductor_core::{Clock, PackageId, PackageRecord};

use crate::{REBUILD_PAGE, RecordPages, Result, SearchError, SearchIndex};

/// Records changed this long before the newest one the rebuild read are written again too: replicas' clocks
/// (which stamp `last_update`) may disagree by that much.
const CLOCK_MARGIN_MS: i64 = 60_000;

/// Rebuilds `index` from `packages`, then catches up with what changed while it ran; returns the records indexed.
/// The registry is read a page at a time, both times: a rebuild holding the whole catalogue at once was the
/// soak's memory burst, every gateway's at once when the search cluster came back empty.
pub(crate) async fn rebuild(
    packages: &dyn PackageRepository,
    index: &dyn SearchIndex,
    clock: &dyn Clock,
) -> Result<usize> {
    let mut read = RegistryPages::new(packages);
    index.rebuild(&mut read).await?;
    let since = read.newest.saturating_sub(CLOCK_MARGIN_MS);

    // The index's ids before the registry's: a package added between the two reads is then in neither list (its
    // own write indexed it) instead of only in the index, where it would look deleted.
    let indexed = index.ids().await?;
    let mut kept: HashSet<String> = HashSet::new();
    let mut changed: Vec<PackageId> = Vec::new();
    let mut now = RegistryPages::new(packages);
    loop {
        let page = now.next_page().await?;
        if page.is_empty() {
            break;
        }
        for record in page {
            kept.insert(record.id.to_string());
            if record.last_update.as_millis() >= since {
                changed.push(record.id);
            }
        }
    }
    let gone = indexed.into_iter().filter(|id| !kept.contains(&id.to_string()));
    // Each one as the registry has it at the moment it is written, read again just before: the writes a catch-up
    // makes take a while, and clients keep publishing and deleting meanwhile.
    for id in changed.into_iter().chain(gone).collect::<Vec<_>>() {
        match packages.get(&id).await.map_err(unavailable)? {
            Some(record) => index.upsert(&record).await?,
            None => index.delete(&id, clock.now()).await?,
        }
    }
    Ok(kept.len())
}

/// The registry in pages of [`REBUILD_PAGE`] by id, noting the newest change read.
struct RegistryPages<'a> {
    packages: &'a dyn PackageRepository,
    /// The last id read; `None` before the first page.
    after: Option<PackageId>,
    finished: bool,
    newest: i64,
}

impl<'a> RegistryPages<'a> {
    fn new(packages: &'a dyn PackageRepository) -> Self {
        Self {
            packages,
            after: None,
            finished: false,
            newest: i64::MIN,
        }
    }
}

#[async_trait]
impl RecordPages for RegistryPages<'_> {
    async fn next_page(&mut self) -> Result<Vec<PackageRecord>> {
        if self.finished {
            return Ok(Vec::new());
        }
        let page = self
            .packages
            .page(self.after.as_ref(), REBUILD_PAGE)
            .await
            .map_err(unavailable)?;
        self.finished = page.len() < REBUILD_PAGE;
        if let Some(last) = page.last() {
            self.after = Some(last.id.clone());
        }
        if let Some(newest) = page.iter().map(|r| r.last_update.as_millis()).max() {
            self.newest = self.newest.max(newest);
        }
        Ok(page)
    }
}

/// One rebuild at a time, and none for the callers that waited while one ran. When a fresh cluster comes back,
/// every search meets the missing index at once: each used to read the whole registry and rebuild the index in
/// turn, a herd that held a catalogue's worth of records per waiting search (the soak's gateways grew by hundreds
/// of MiB) and kept the index rebuilding long after the first rebuild had fixed it.
#[derive(Debug, Default)]
pub(crate) struct OneRebuild {
    /// The last successful rebuild's count, held while a rebuild runs.
    turn: tokio::sync::Mutex<Option<usize>>,
    /// How many rebuilds have succeeded.
    finished: AtomicU64,
}

impl OneRebuild {
    pub(crate) async fn run(
        &self,
        packages: &dyn PackageRepository,
        index: &dyn SearchIndex,
        clock: &dyn Clock,
    ) -> Result<usize> {
        let seen = self.finished.load(Ordering::Acquire);
        let mut last = self.turn.lock().await;
        if let Some(count) = *last
            && self.finished.load(Ordering::Acquire) != seen
        {
            return Ok(count);
        }
        let count = rebuild(packages, index, clock).await?;
        *last = Some(count);
        self.finished.fetch_add(1, Ordering::Release);
        Ok(count)
    }
}

fn unavailable(error: conductor_core::repo::RepoError) -> SearchError {
    SearchError::Unavailable(error.to_string())
}

#[cfg(all(test, feature = "embedded"))]
mod tests {
    use std::sync::Arc;

    use conductor_core::Timestamp;
    use serde_json::json;

    use super::*;
    use crate::RecordList;
    use crate::embedded::EmbeddedIndex;
    use crate::memory::MemoryPackages;
    use crate::{Hits, SearchQuery};

    /// An index whose rebuild is slow enough for another replica to change the registry while it runs: that
    /// replica's writes go to the index being replaced.
    struct Raced {
        index: EmbeddedIndex,
        packages: Arc<MemoryPackages>,
        late: PackageRecord,
    }

    #[async_trait]
    impl SearchIndex for Raced {
        fn backend(&self) -> &'static str {
            "embedded"
        }
        async fn upsert(&self, record: &PackageRecord) -> Result<()> {
            self.index.upsert(record).await
        }
        async fn delete(&self, id: &PackageId, at: Timestamp) -> Result<()> {
            self.index.delete(id, at).await
        }
        async fn search(&self, query: &SearchQuery) -> Result<Box<dyn Hits>> {
            self.index.search(query).await
        }
        async fn rebuild(&self, pages: &mut dyn RecordPages) -> Result<()> {
            // The rebuild reads the registry through ...
            let mut records = Vec::new();
            loop {
                let page = pages.next_page().await?;
                if page.is_empty() {
                    break;
                }
                records.extend(page);
            }
            let fixtures = crate::contract::fixtures();
            // Stamped as a change made now is: after everything the rebuild read.
            let now = fixtures
                .iter()
                .map(|r| r.last_update.as_millis())
                .max()
                .unwrap_or(0)
                + 1_000;
            // Another replica, after this rebuild read the registry: one package deleted, one added, one made
            // private, each written to the registry and to the index as it then was.
            self.packages.delete(&fixtures[0].id).await.map_err(unavailable)?;
            self.index
                .delete(&fixtures[0].id, Timestamp::from_millis(now))
                .await?;
            let mut added = fixtures[5].clone();
            added.last_update = Timestamp::from_millis(now);
            self.packages.put(&added).await.map_err(unavailable)?;
            self.index.upsert(&added).await?;
            let mut hidden = fixtures[4].clone();
            hidden.package["private"] = json!(true);
            hidden.last_update = Timestamp::from_millis(now);
            self.packages.put(&hidden).await.map_err(unavailable)?;
            self.index.upsert(&hidden).await?;
            // ... then writes what it read.
            self.index.rebuild(&mut RecordList::new(records)).await
        }
        async fn count(&self) -> Result<u64> {
            self.index.count().await
        }
        async fn ids(&self) -> Result<Vec<PackageId>> {
            // Another replica adds a package while the catch-up reads: the catch-up must not take it for deleted.
            if self
                .packages
                .get(&self.late.id)
                .await
                .map_err(unavailable)?
                .is_none()
            {
                self.packages.put(&self.late).await.map_err(unavailable)?;
                self.index.upsert(&self.late).await?;
            }
            self.index.ids().await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_made_while_a_rebuild_ran_are_in_the_index_it_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let packages = Arc::new(MemoryPackages::default());
        let fixtures = crate::contract::fixtures();
        for record in &fixtures[..5] {
            packages.put(record).await.unwrap();
        }
        let mut late = fixtures[1].clone();
        late.id = PackageId::parse(&format!("{}:late-arrival", fixtures[1].id.owner())).unwrap();
        let index = Raced {
            index: EmbeddedIndex::open(dir.path()).unwrap(),
            packages: packages.clone(),
            late,
        };

        assert_eq!(
            rebuild(packages.as_ref(), &index, &conductor_core::SystemClock)
                .await
                .unwrap(),
            6
        );

        let listed = crate::contract::listed_ids(&index).await;
        let mut registry: Vec<String> = packages
            .page(None, 100)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id.to_string())
            .collect();
        registry.sort();
        assert_eq!(
            listed, registry,
            "the deleted package is gone, the added one is there"
        );
        let anonymous = SearchQuery::parse("package", [("size", "100")], None, 100).unwrap();
        let visible = index.search(&anonymous).await.unwrap().read_all().unwrap();
        assert!(
            !visible.iter().any(|hit| hit.id == fixtures[4].id),
            "the package made private is not shown to everyone"
        );
    }

    /// Counts the rebuilds it is asked for, each slow enough for other callers to queue behind it.
    struct Counted {
        index: EmbeddedIndex,
        rebuilds: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl SearchIndex for Counted {
        fn backend(&self) -> &'static str {
            "embedded"
        }
        async fn upsert(&self, record: &PackageRecord) -> Result<()> {
            self.index.upsert(record).await
        }
        async fn delete(&self, id: &PackageId, at: Timestamp) -> Result<()> {
            self.index.delete(id, at).await
        }
        async fn search(&self, query: &SearchQuery) -> Result<Box<dyn Hits>> {
            self.index.search(query).await
        }
        async fn rebuild(&self, pages: &mut dyn RecordPages) -> Result<()> {
            self.rebuilds.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            self.index.rebuild(pages).await
        }
        async fn count(&self) -> Result<u64> {
            self.index.count().await
        }
        async fn ids(&self) -> Result<Vec<PackageId>> {
            self.index.ids().await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rebuild_reads_the_registry_a_page_at_a_time_and_misses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let packages = Arc::new(MemoryPackages::default());
        let template = crate::contract::fixtures().remove(0);
        for n in 0..(2 * REBUILD_PAGE + 3) {
            let mut record = template.clone();
            record.id = PackageId::parse(&format!("{}:package-{n:05}", template.id.owner())).unwrap();
            packages.put(&record).await.unwrap();
        }
        // The registry as a rebuild reads it: pages of at most REBUILD_PAGE, every record once.
        let mut pages = RegistryPages::new(packages.as_ref());
        let (mut read, mut largest) = (0, 0);
        loop {
            let page = pages.next_page().await.unwrap();
            if page.is_empty() {
                break;
            }
            largest = largest.max(page.len());
            read += page.len();
        }
        assert_eq!(read, 2 * REBUILD_PAGE + 3);
        assert_eq!(largest, REBUILD_PAGE, "never more than a page at once");

        let index = EmbeddedIndex::open(dir.path()).unwrap();
        let indexed = rebuild(packages.as_ref(), &index, &conductor_core::SystemClock)
            .await
            .unwrap();
        assert_eq!(indexed, 2 * REBUILD_PAGE + 3);
        assert_eq!(index.count().await.unwrap(), (2 * REBUILD_PAGE + 3) as u64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn searches_that_meet_a_missing_index_at_once_rebuild_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let packages = Arc::new(MemoryPackages::default());
        for record in crate::contract::fixtures() {
            packages.put(&record).await.unwrap();
        }
        let index = Arc::new(Counted {
            index: EmbeddedIndex::open(dir.path()).unwrap(),
            rebuilds: Default::default(),
        });
        let one = Arc::new(OneRebuild::default());
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (packages, index, one) = (packages.clone(), index.clone(), one.clone());
            callers.spawn(async move {
                one.run(packages.as_ref(), index.as_ref(), &conductor_core::SystemClock)
                    .await
            });
        }
        while let Some(counted) = callers.join_next().await {
            assert_eq!(counted.unwrap().unwrap(), 6);
        }
        assert_eq!(
            index.rebuilds.load(Ordering::SeqCst),
            1,
            "one rebuild for twenty callers"
        );
        // A caller after it finds the index as it is and rebuilds again (a later outage is a new rebuild).
        one.run(packages.as_ref(), index.as_ref(), &conductor_core::SystemClock)
            .await
            .unwrap();
        assert_eq!(index.rebuilds.load(Ordering::SeqCst), 2);
    }
}
