//! Permission grants and the access policy built on them (DESIGN §4).
//!
//! A grant gives a grantee a JSON object of `permission -> bool` for one service. `*` is everyone's default;
//! a user's effective permissions are the `*` grant overlaid with their own (so a user row can also take a
//! default away with `false`). The policy answers the questions the datastore and package endpoints ask of a
//! verified permission token.

use std::sync::Arc;

use conductor_core::repo::{PermissionRepository, RepoError};
use conductor_core::{Grantee, PermissionGrant, UserId};
use serde_json::{Map, Value};

/// The service whose permission tokens the datastore and package endpoints accept.
pub const DATASTORE_SERVICE: &str = "os.datastore";
/// May upload data packages under one's own prefix and load them.
pub const DATAPACKAGE_UPLOAD: &str = "datapackage-upload";
/// May manage (publish, delete, update, run hooks of) any package, not only one's own.
pub const PACKAGE_ADMIN: &str = "package-admin";

/// A service's permissions: permission name → granted.
pub type Permissions = Map<String, Value>;

#[derive(Debug, thiserror::Error)]
pub enum PermissionError {
    #[error("{0:?} is not a valid service or permission name: use 1 to 100 of a-z, 0-9, '.', '_' and '-'")]
    InvalidName(String),
    #[error(transparent)]
    Repo(#[from] RepoError),
}

pub type Result<T> = std::result::Result<T, PermissionError>;

/// Service and permission names: short, lower-case, no spaces, so they read the same in tokens, JSON and CLI.
pub fn validate_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(PermissionError::InvalidName(name.to_owned()))
    }
}

/// Whether a permissions object grants `permission`: only JSON `true` does.
pub fn grants(permissions: &Permissions, permission: &str) -> bool {
    permissions.get(permission) == Some(&Value::Bool(true))
}

/// Grants, defaults and their merge, over the permission repository.
#[derive(Clone)]
pub struct PermissionService {
    repository: Arc<dyn PermissionRepository>,
}

impl std::fmt::Debug for PermissionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PermissionService").finish_non_exhaustive()
    }
}

impl PermissionService {
    pub fn new(repository: Arc<dyn PermissionRepository>) -> Self {
        Self { repository }
    }

    /// The `*` defaults for `service` overlaid with the user's own grant.
    pub async fn effective(&self, user: &UserId, service: &str) -> Result<Permissions> {
        validate_name(service)?;
        let mut permissions = Permissions::new();
        let mut grants = self.repository.for_user(user, service).await?;
        // Everyone's first, so the user's own override them, whatever order the store answered in.
        grants.sort_by_key(|grant| grant.grantee != Grantee::Everyone);
        for grant in grants {
            permissions.extend(grant.permissions);
        }
        Ok(permissions)
    }

    /// Sets `permissions` (name → value) in the grantee's grant for `service`, keeping its other permissions.
    pub async fn grant(
        &self,
        grantee: &Grantee,
        service: &str,
        permissions: Permissions,
    ) -> Result<PermissionGrant> {
        validate_name(service)?;
        for name in permissions.keys() {
            validate_name(name)?;
        }
        let mut merged = self
            .repository
            .get(grantee, service)
            .await?
            .map(|g| g.permissions)
            .unwrap_or_default();
        merged.extend(permissions);
        let grant = PermissionGrant {
            grantee: grantee.clone(),
            service: service.to_owned(),
            permissions: merged,
        };
        self.repository.put(&grant).await?;
        Ok(grant)
    }

    /// Removes one permission from the grantee's grant, or the whole grant for the service when `permission` is
    /// `None`. Returns whether anything was removed.
    pub async fn revoke(&self, grantee: &Grantee, service: &str, permission: Option<&str>) -> Result<bool> {
        validate_name(service)?;
        let Some(permission) = permission else {
            return Ok(self.repository.delete(grantee, service).await?);
        };
        let Some(mut grant) = self.repository.get(grantee, service).await? else {
            return Ok(false);
        };
        if grant.permissions.remove(permission).is_none() {
            return Ok(false);
        }
        if grant.permissions.is_empty() {
            self.repository.delete(grantee, service).await?;
        } else {
            self.repository.put(&grant).await?;
        }
        Ok(true)
    }

    pub async fn list(&self, grantee: Option<&Grantee>) -> Result<Vec<PermissionGrant>> {
        Ok(self.repository.list(grantee).await?)
    }
}

/// What a verified permission token says: who, for which service, with which permissions.
#[derive(Clone, Copy, Debug)]
pub struct Holder<'a> {
    pub userid: &'a UserId,
    pub service: &'a str,
    pub permissions: &'a Permissions,
}

/// Why the policy refused, so the gateway can answer 403 with a precise message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("this token is for the service {found:?}, not {expected:?}")]
    WrongService { expected: &'static str, found: String },
    #[error("this token does not grant {0:?}")]
    MissingPermission(&'static str),
    #[error("only the owner (or a package admin) may do this")]
    NotOwner,
}

/// May the holder upload data packages for `owner`? Uploads go under the holder's own prefix only.
pub fn may_upload(holder: Holder<'_>, owner: &UserId) -> std::result::Result<(), Denied> {
    datastore_token(holder)?;
    if !grants(holder.permissions, DATAPACKAGE_UPLOAD) {
        return Err(Denied::MissingPermission(DATAPACKAGE_UPLOAD));
    }
    if holder.userid != owner {
        return Err(Denied::NotOwner);
    }
    Ok(())
}

/// May the holder manage the package owned by `owner`: its owner, or a `package-admin`.
pub fn may_manage(holder: Holder<'_>, owner: &UserId) -> std::result::Result<(), Denied> {
    datastore_token(holder)?;
    if holder.userid == owner || grants(holder.permissions, PACKAGE_ADMIN) {
        Ok(())
    } else {
        Err(Denied::NotOwner)
    }
}

fn datastore_token(holder: Holder<'_>) -> std::result::Result<(), Denied> {
    if holder.service == DATASTORE_SERVICE {
        Ok(())
    } else {
        Err(Denied::WrongService {
            expected: DATASTORE_SERVICE,
            found: holder.service.to_owned(),
        })
    }
}

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::InMemoryGrants as InMemory;

    fn object(value: Value) -> Permissions {
        value.as_object().cloned().unwrap()
    }

    fn service_with_default() -> PermissionService {
        let repository = InMemory::default();
        repository.0.lock().unwrap().insert(
            ("*".into(), DATASTORE_SERVICE.into()),
            PermissionGrant {
                grantee: Grantee::Everyone,
                service: DATASTORE_SERVICE.into(),
                permissions: object(json!({DATAPACKAGE_UPLOAD: true})),
            },
        );
        PermissionService::new(Arc::new(repository))
    }

    #[tokio::test]
    async fn effective_is_the_default_overlaid_with_the_users_own() {
        let service = service_with_default();
        let ada = UserId::from_email("ada@example.test");
        assert_eq!(
            service.effective(&ada, DATASTORE_SERVICE).await.unwrap(),
            object(json!({DATAPACKAGE_UPLOAD: true}))
        );
        assert!(service.effective(&ada, "os.other").await.unwrap().is_empty());

        let ada_grantee = Grantee::User(ada.clone());
        service
            .grant(
                &ada_grantee,
                DATASTORE_SERVICE,
                object(json!({PACKAGE_ADMIN: true})),
            )
            .await
            .unwrap();
        assert_eq!(
            service.effective(&ada, DATASTORE_SERVICE).await.unwrap(),
            object(json!({DATAPACKAGE_UPLOAD: true, PACKAGE_ADMIN: true}))
        );
        // A user's own row can take a default away.
        service
            .grant(
                &ada_grantee,
                DATASTORE_SERVICE,
                object(json!({DATAPACKAGE_UPLOAD: false})),
            )
            .await
            .unwrap();
        let effective = service.effective(&ada, DATASTORE_SERVICE).await.unwrap();
        assert!(!grants(&effective, DATAPACKAGE_UPLOAD) && grants(&effective, PACKAGE_ADMIN));

        assert!(
            service
                .revoke(&ada_grantee, DATASTORE_SERVICE, Some(PACKAGE_ADMIN))
                .await
                .unwrap()
        );
        assert!(
            !service
                .revoke(&ada_grantee, DATASTORE_SERVICE, Some(PACKAGE_ADMIN))
                .await
                .unwrap()
        );
        assert!(
            service
                .revoke(&ada_grantee, DATASTORE_SERVICE, None)
                .await
                .unwrap()
        );
        assert!(grants(
            &service.effective(&ada, DATASTORE_SERVICE).await.unwrap(),
            DATAPACKAGE_UPLOAD
        ));
    }

    #[tokio::test]
    async fn names_are_validated() {
        let service = service_with_default();
        let grantee = Grantee::User(UserId::from_email("ada@example.test"));
        for bad in ["", "OS.Datastore", "a b", "x'; drop table permissions; --"] {
            assert!(
                service.grant(&grantee, bad, Permissions::new()).await.is_err(),
                "{bad:?}"
            );
        }
        assert!(
            service
                .grant(&grantee, "os.datastore", object(json!({"Bad Name": true})))
                .await
                .is_err()
        );
    }

    #[test]
    fn only_json_true_grants() {
        let permissions = object(json!({"a": true, "b": "true", "c": 1, "d": false}));
        assert!(grants(&permissions, "a"));
        for name in ["b", "c", "d", "missing"] {
            assert!(!grants(&permissions, name), "{name}");
        }
    }

    #[test]
    fn upload_needs_the_datastore_service_the_permission_and_ownership() {
        let ada = UserId::from_email("ada@example.test");
        let bob = UserId::from_email("bob@example.test");
        let upload = object(json!({DATAPACKAGE_UPLOAD: true}));
        let holder = Holder {
            userid: &ada,
            service: DATASTORE_SERVICE,
            permissions: &upload,
        };
        assert_eq!(may_upload(holder, &ada), Ok(()));
        assert_eq!(may_upload(holder, &bob), Err(Denied::NotOwner));
        let other = Holder {
            service: "os.other",
            ..holder
        };
        assert!(matches!(
            may_upload(other, &ada),
            Err(Denied::WrongService { .. })
        ));
        let none = Permissions::new();
        let bare = Holder {
            permissions: &none,
            ..holder
        };
        assert_eq!(
            may_upload(bare, &ada),
            Err(Denied::MissingPermission(DATAPACKAGE_UPLOAD))
        );
    }

    #[test]
    fn owners_and_package_admins_may_manage() {
        let ada = UserId::from_email("ada@example.test");
        let bob = UserId::from_email("bob@example.test");
        let plain = object(json!({DATAPACKAGE_UPLOAD: true}));
        let admin = object(json!({PACKAGE_ADMIN: true}));
        let holder = Holder {
            userid: &ada,
            service: DATASTORE_SERVICE,
            permissions: &plain,
        };
        assert_eq!(may_manage(holder, &ada), Ok(()));
        assert_eq!(may_manage(holder, &bob), Err(Denied::NotOwner));
        assert_eq!(
            may_manage(
                Holder {
                    permissions: &admin,
                    ..holder
                },
                &bob
            ),
            Ok(())
        );
        assert!(
            may_manage(
                Holder {
                    service: "os.other",
                    permissions: &admin,
                    ..holder
                },
                &bob
            )
            .is_err()
        );
    }
}
