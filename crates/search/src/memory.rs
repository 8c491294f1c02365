//! In-memory fakes of the registry's ports, for the search crate's own tests: the domain is tested without any
//! database adapter (the adapters keep their own contract suite in `conductor-store`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use conductor_core::repo::{
    OutboxEntry, PackageRepository, RegistryCounts, RepoResult, SearchOutboxRepository,
};
use conductor_core::{PackageId, PackageRecord, Timestamp};

/// Packages by id, as the database would keep them.
#[derive(Debug, Default)]
pub struct MemoryPackages(Mutex<BTreeMap<PackageId, PackageRecord>>);

impl MemoryPackages {
    fn with<T>(&self, work: impl FnOnce(&mut BTreeMap<PackageId, PackageRecord>) -> T) -> T {
        work(&mut self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

#[async_trait]
impl PackageRepository for MemoryPackages {
    async fn get(&self, id: &PackageId) -> RepoResult<Option<PackageRecord>> {
        Ok(self.with(|all| all.get(id).cloned()))
    }

    async fn get_many(&self, ids: &[PackageId]) -> RepoResult<Vec<PackageRecord>> {
        Ok(self.with(|all| ids.iter().filter_map(|id| all.get(id).cloned()).collect()))
    }

    async fn put(&self, record: &PackageRecord) -> RepoResult<()> {
        self.with(|all| all.insert(record.id.clone(), record.clone()));
        Ok(())
    }

    async fn delete(&self, id: &PackageId) -> RepoResult<bool> {
        Ok(self.with(|all| all.remove(id).is_some()))
    }

    async fn page(&self, after: Option<&PackageId>, limit: usize) -> RepoResult<Vec<PackageRecord>> {
        use std::ops::Bound;
        let from = after.map_or(Bound::Unbounded, |id| Bound::Excluded(id.clone()));
        Ok(self.with(|all| {
            all.range((from, Bound::Unbounded))
                .take(limit)
                .map(|(_, record)| record.clone())
                .collect()
        }))
    }

    async fn counts(&self) -> RepoResult<RegistryCounts> {
        Ok(self.with(|all| RegistryCounts {
            packages: all.len() as u64,
            ..RegistryCounts::default()
        }))
    }
}

/// The outbox's entries in insertion order.
#[derive(Debug, Default)]
pub struct MemoryOutbox(Mutex<(i64, Vec<OutboxEntry>)>);

#[async_trait]
impl SearchOutboxRepository for MemoryOutbox {
    async fn push(&self, package_id: &PackageId, _now: Timestamp) -> RepoResult<()> {
        let mut state = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.0 += 1;
        let id = state.0;
        state.1.push(OutboxEntry {
            id,
            package_id: package_id.clone(),
            attempts: 0,
        });
        Ok(())
    }

    async fn pending(&self, limit: i64) -> RepoResult<Vec<OutboxEntry>> {
        let state = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let limit = usize::try_from(limit).unwrap_or(0);
        Ok(state.1.iter().take(limit).cloned().collect())
    }

    async fn done(&self, id: i64) -> RepoResult<()> {
        let mut state = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.1.retain(|entry| entry.id != id);
        Ok(())
    }

    async fn failed(&self, id: i64, _error: &str) -> RepoResult<()> {
        let mut state = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for entry in state.1.iter_mut().filter(|entry| entry.id == id) {
            entry.attempts += 1;
        }
        Ok(())
    }
}
