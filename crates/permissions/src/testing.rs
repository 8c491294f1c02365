//! An in-memory [`PermissionRepository`] for domain tests (this crate's and those of crates built on it, with the
//! `testing` feature); the SQL adapters keep the same contract in `conductor-store`'s suite.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use conductor_core::repo::{PermissionRepository, RepoResult};
use conductor_core::{Grantee, PermissionGrant, UserId};

/// Grants by (grantee, service).
#[derive(Debug, Default)]
pub struct InMemoryGrants(pub Mutex<HashMap<(String, String), PermissionGrant>>);

impl InMemoryGrants {
    fn grants(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), PermissionGrant>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl PermissionRepository for InMemoryGrants {
    async fn get(&self, grantee: &Grantee, service: &str) -> RepoResult<Option<PermissionGrant>> {
        Ok(self
            .grants()
            .get(&(grantee.to_string(), service.to_owned()))
            .cloned())
    }

    async fn for_user(&self, user: &UserId, service: &str) -> RepoResult<Vec<PermissionGrant>> {
        let grants = self.grants();
        Ok([Grantee::EVERYONE.to_owned(), user.to_string()]
            .into_iter()
            .filter_map(|grantee| grants.get(&(grantee, service.to_owned())).cloned())
            .collect())
    }

    async fn put(&self, grant: &PermissionGrant) -> RepoResult<()> {
        self.grants()
            .insert((grant.grantee.to_string(), grant.service.clone()), grant.clone());
        Ok(())
    }

    async fn delete(&self, grantee: &Grantee, service: &str) -> RepoResult<bool> {
        Ok(self
            .grants()
            .remove(&(grantee.to_string(), service.to_owned()))
            .is_some())
    }

    async fn list(&self, _: Option<&Grantee>) -> RepoResult<Vec<PermissionGrant>> {
        Ok(self.grants().values().cloned().collect())
    }
}
