//! What the `/user` endpoints and the login callback do, over the user and permission stores: who a token
//! belongs to, a permission token for a service, the one-time username, and logging a verified identity in.

use std::sync::Arc;

use conductor_core::repo::{RepoError, UserRepository, UsernameChange};
use conductor_core::{Clock, NewUser, Profile, UserId};
use conductor_permissions::{PermissionError, PermissionService, Permissions};

use crate::oidc::VerifiedIdentity;
use crate::recent::RecentAccounts;
use crate::tokens::{TokenError, TokenIssuer, UserClaims};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("a valid user token is required ({0})")]
    Unauthorized(TokenError),
    #[error("no such user")]
    UnknownUser,
    #[error("a username is 3 to 40 characters of a-z, 0-9, '_' and '-'")]
    InvalidUsername,
    #[error("that username is taken")]
    UsernameTaken,
    #[error("the username can be set only once")]
    UsernameAlreadySet,
    #[error("not a usable e-mail address")]
    InvalidEmail,
    #[error(transparent)]
    Permission(#[from] PermissionError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("signing failed: {0}")]
    Signing(TokenError),
}

/// A permission token and what it grants: `/user/authorize`'s answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Authorization {
    pub token: String,
    pub userid: UserId,
    pub permissions: Permissions,
    pub service: String,
}

/// Accounts: users, their tokens and their permission tokens.
#[derive(Clone)]
pub struct Accounts {
    tokens: TokenIssuer,
    users: Arc<dyn UserRepository>,
    permissions: PermissionService,
    clock: Arc<dyn Clock>,
    recent: Arc<RecentAccounts>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl Accounts {
    pub fn new(
        tokens: TokenIssuer,
        users: Arc<dyn UserRepository>,
        permissions: PermissionService,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            tokens,
            users,
            permissions,
            clock,
            recent: Arc::default(),
        }
    }

    pub fn tokens(&self) -> &TokenIssuer {
        &self.tokens
    }

    /// The claims of a user token, verified now: the error says why a missing or refused token is not a user
    /// (a missing one reads as malformed, as the original treated it).
    /// A token verified in the last minute is not verified again (until it expires).
    pub fn verify_user(&self, token: Option<&str>) -> Result<UserClaims, TokenError> {
        let token = token.ok_or(TokenError::Malformed)?;
        let now = self.clock.now();
        if let Some(claims) = self.recent.verified(token, now) {
            return Ok(claims);
        }
        let claims = self.tokens.verify_user(token, now)?;
        self.recent.remember_verified(token, &claims, now);
        Ok(claims)
    }

    /// The profile of a verified user; `None` when the user no longer exists. Read at most every few seconds
    /// per user (`recent::PROFILE_TTL`).
    pub async fn profile(&self, user: &UserId) -> Result<Option<Profile>, AccountError> {
        let now = self.clock.now();
        if let Some(profile) = self.recent.profile(user, now) {
            return Ok(Some(profile));
        }
        let profile = self.users.get(user).await?;
        if let Some(profile) = &profile {
            self.recent.remember_profile(profile, now);
        }
        Ok(profile)
    }

    /// A permission token for `service` carrying the user's effective permissions (read at most a second ago).
    /// One issued for the same permissions within the last minute is handed out again instead of signing anew.
    pub async fn authorize(&self, user: &UserClaims, service: &str) -> Result<Authorization, AccountError> {
        let userid = user.userid.clone();
        let now = self.clock.now();
        let permissions = match self.recent.permissions(&userid, service, now) {
            Some(permissions) => permissions,
            None => {
                let permissions = self.permissions.effective(&userid, service).await?;
                self.recent
                    .remember_permissions(&userid, service, &permissions, now);
                permissions
            }
        };
        let token = match self.recent.permission_token(&userid, service, &permissions, now) {
            Some(token) => token,
            None => {
                let token = self
                    .tokens
                    .issue_permission(&userid, service, permissions.clone(), now)
                    .map_err(AccountError::Signing)?;
                self.recent
                    .remember_permission_token(&userid, service, &permissions, &token, now);
                token
            }
        };
        Ok(Authorization {
            token,
            userid,
            permissions,
            service: service.to_owned(),
        })
    }

    /// Sets the user's username, once. It is stored lower-case.
    pub async fn set_username(&self, user: &UserClaims, username: &str) -> Result<String, AccountError> {
        let username = normalise_username(username)?;
        let change = self.users.set_username(&user.userid, &username).await?;
        self.recent.forget_profile(&user.userid);
        match change {
            UsernameChange::Set => Ok(username),
            UsernameChange::AlreadySet => Err(AccountError::UsernameAlreadySet),
            UsernameChange::Taken => Err(AccountError::UsernameTaken),
            UsernameChange::NoSuchUser => Err(AccountError::UnknownUser),
        }
    }

    /// Logs a verified identity in: finds or creates the user by e-mail and issues a user token.
    pub async fn log_in(&self, identity: &VerifiedIdentity) -> Result<(Profile, String), AccountError> {
        let provider_id = format!("{}:{}", identity.provider, identity.subject);
        self.log_in_email(
            &identity.email,
            identity.name.as_deref(),
            identity.picture.clone(),
            provider_id,
        )
        .await
    }

    /// Logs in (creating if needed) the user with this e-mail: the `dev` provider and `conductor token mint`.
    pub async fn log_in_email(
        &self,
        email: &str,
        name: Option<&str>,
        avatar_url: Option<String>,
        provider_id: String,
    ) -> Result<(Profile, String), AccountError> {
        let email = email.trim();
        let valid = email.len() <= 254
            && email
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if !valid {
            return Err(AccountError::InvalidEmail);
        }
        let name = name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| email.split('@').next().unwrap_or(email));
        let user = NewUser {
            idhash: UserId::from_email(email),
            provider_id,
            name: name.to_owned(),
            email: email.to_owned(),
            avatar_url,
        };
        let now = self.clock.now();
        let profile = self.users.upsert_login(&user, now).await?;
        self.recent.forget_profile(&profile.idhash);
        let token = self
            .tokens
            .issue_user(&profile.idhash, now)
            .map_err(AccountError::Signing)?;
        Ok((profile, token))
    }
}

/// Trimmed and lower-cased, then 3 to 40 of `[a-z0-9_-]`.
pub fn normalise_username(raw: &str) -> Result<String, AccountError> {
    let username = raw.trim().to_lowercase();
    let valid = (3..=40).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid {
        Ok(username)
    } else {
        Err(AccountError::InvalidUsername)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_checked() {
        assert_eq!(normalise_username(" Ada_L-1 ").unwrap(), "ada_l-1");
        for bad in ["ab", "a b c", "ada!", "ädä", &"x".repeat(41), ""] {
            assert!(normalise_username(bad).is_err(), "{bad:?}");
        }
    }
}
