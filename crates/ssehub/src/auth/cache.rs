//! A bounded cache of verified tokens, so that a publisher sending the same token with every
//! request pays for its signature check, JSON parsing and selector compilation once.
//!
//! Only what depends on the token alone is cached: the signature, audience, issuer and claims
//! (the keys and these settings change only by [`super::Authorizer::replace`], which starts an
//! empty cache with them). The time
//! checks depend on the clock, so a hit checks `exp` and `nbf` again against the caller's
//! `now` with the same leeway; an entry past its `exp` is dropped and the token verified in
//! full, which gives the precise error. Failures are never cached.
//!
//! Bounded by entry count and token length: a token longer than [`MAX_TOKEN_BYTES`] is not
//! cached, and a full cache is emptied before the next insert (rare: only tokens that verified
//! fill it, and only holders of a key can make those).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Role;
use super::grants::Grants;

/// Entries held at most, per role.
pub(super) const CAPACITY: usize = 1024;
/// Longer tokens are verified every time (bounds the cache's memory to ~4 MiB of keys).
pub(super) const MAX_TOKEN_BYTES: usize = 4096;

/// What a verified token allows, and the times that bound when.
struct Entry {
    grants: Grants,
    nbf: Option<u64>,
}

/// Verified tokens by token text, one map per role (each role has its own key).
#[derive(Default)]
pub(super) struct TokenCache {
    entries: Mutex<[HashMap<Box<str>, Entry>; 2]>,
}

fn slot(role: Role) -> usize {
    match role {
        Role::Publisher => 0,
        Role::Subscriber => 1,
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.len())
            .finish()
    }
}

impl TokenCache {
    /// The grants of `token` if it verified before and its `exp` and `nbf` still hold at
    /// `now` within `leeway`.
    pub(super) fn get(
        &self,
        role: Role,
        token: &str,
        now: SystemTime,
        leeway: Duration,
    ) -> Option<Grants> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entries = &mut entries[slot(role)];
        let entry = entries.get(token)?;
        let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let leeway = leeway.as_secs();
        let expired = entry.grants.expires_at.is_some_and(|exp| {
            let exp = exp.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            now_secs > exp.saturating_add(leeway)
        });
        let early = entry
            .nbf
            .is_some_and(|nbf| nbf > now_secs.saturating_add(leeway));
        if expired {
            entries.remove(token);
            return None;
        }
        if early {
            return None;
        }
        Some(entry.grants.clone())
    }

    /// Remembers that `token` verified to `grants` (with its `nbf`, if any).
    pub(super) fn insert(&self, role: Role, token: &str, grants: &Grants, nbf: Option<u64>) {
        if token.len() > MAX_TOKEN_BYTES {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entries = &mut entries[slot(role)];
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(
            token.into(),
            Entry {
                grants: grants.clone(),
                nbf,
            },
        );
    }

    /// Entries held.
    pub(super) fn len(&self) -> usize {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.iter().map(HashMap::len).sum()
    }
}
