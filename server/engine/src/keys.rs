//! API keys: who may call, for which tenant, with which role. A key is a 256-bit random
//! secret shown once when it is made (`rf_<key id>_<64 hex digits>`); the store keeps
//! only its SHA-256, in a tree of its own, and a copy of every key's record in memory so
//! checking a call reads no disk. Keys expire and are revoked, never deleted: a revoked
//! key stays listed with when it was revoked.

use std::collections::BTreeMap;
use std::sync::RwLock;

use reelforge_core::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::now_unix_ms;

/// What a key may do; each role can do everything the roles below it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Search, list and get videos, jobs and highlights, watch, download.
    Read,
    /// Read, and ingest, highlight, library, import, rate, delete.
    Write,
    /// Write, and key management.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Read, Role::Write, Role::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Result<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                Error::invalid(format!("role {text:?} is not one of read, write, admin"))
            })
    }
}

/// A stored key: everything but its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub key_id: String,
    pub tenant: String,
    pub role: Role,
    pub note: String,
    pub created_unix_ms: i64,
    pub expires_unix_ms: Option<i64>,
    pub revoked_unix_ms: Option<i64>,
    /// Jobs the key may have running at once; 0: only its tenant's limit.
    #[serde(default)]
    pub max_concurrent_jobs: u32,
    /// SHA-256 of the secret, hex.
    sha256: String,
}

impl ApiKey {
    /// Why the key cannot be used at `now`, if it cannot.
    pub fn unusable(&self, now_ms: i64) -> Option<String> {
        if let Some(at) = self.revoked_unix_ms {
            return Some(format!(
                "API key {} was revoked ({})",
                self.key_id,
                ago(now_ms, at)
            ));
        }
        match self.expires_unix_ms {
            Some(at) if at <= now_ms => Some(format!(
                "API key {} expired ({}); ask an admin for a new one",
                self.key_id,
                ago(now_ms, at)
            )),
            _ => None,
        }
    }
}

fn ago(now_ms: i64, at_ms: i64) -> String {
    let s = (now_ms - at_ms).max(0) / 1000;
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        7200..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// A key to make.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub tenant: String,
    pub role: Role,
    /// Seconds until it expires; `None`: never.
    pub expires_in_seconds: Option<i64>,
    pub note: String,
    /// Jobs it may have running at once (0: only the tenant's limit).
    pub max_concurrent_jobs: u32,
}

/// A key as made: its record and the secret the caller must keep (shown once).
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub key: ApiKey,
    pub secret: String,
}

const PREFIX: &str = "rf_";

/// The keys, stored and in memory.
pub struct Keys {
    tree: sled::Tree,
    by_id: RwLock<BTreeMap<String, ApiKey>>,
}

impl Keys {
    pub fn open(db: &sled::Db) -> Result<Keys> {
        let tree = db.open_tree("api_keys")?;
        let mut by_id = BTreeMap::new();
        for item in tree.iter() {
            let (_, value) = item?;
            let key: ApiKey = serde_json::from_slice(&value)
                .map_err(|e| Error::Storage(format!("an API key record is unreadable: {e}")))?;
            by_id.insert(key.key_id.clone(), key);
        }
        Ok(Keys {
            tree,
            by_id: RwLock::new(by_id),
        })
    }

    /// Whether any key was ever made (revoked and expired ones count: a server that had
    /// keys keeps asking for one).
    pub fn any(&self) -> bool {
        !self.read().is_empty()
    }

    pub fn create(&self, new: NewKey) -> Result<CreatedKey> {
        crate::check_tenant(&new.tenant)?;
        if let Some(s) = new.expires_in_seconds {
            if s <= 0 {
                return Err(Error::invalid(format!(
                    "expires_in_seconds must be positive (got {s}); leave it unset for a key that does not expire"
                )));
            }
        }
        if new.note.len() > 500 {
            return Err(Error::invalid("note is longer than 500 bytes"));
        }
        let mut bytes = [0u8; 38];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::internal(format!("no random numbers for a key: {e}")))?;
        let key_id = hex::encode(&bytes[..6]);
        let secret = format!("{PREFIX}{key_id}_{}", hex::encode(&bytes[6..]));
        let now = now_unix_ms();
        let key = ApiKey {
            key_id: key_id.clone(),
            tenant: new.tenant,
            role: new.role,
            note: new.note,
            created_unix_ms: now,
            expires_unix_ms: new.expires_in_seconds.map(|s| now + s * 1000),
            revoked_unix_ms: None,
            max_concurrent_jobs: new.max_concurrent_jobs,
            sha256: hex::encode(Sha256::digest(secret.as_bytes())),
        };
        self.put(&key)?;
        Ok(CreatedKey { key, secret })
    }

    /// Every key, or one tenant's, oldest first.
    pub fn list(&self, tenant: Option<&str>) -> Vec<ApiKey> {
        let mut keys: Vec<ApiKey> = self
            .read()
            .values()
            .filter(|k| tenant.is_none_or(|t| k.tenant == t))
            .cloned()
            .collect();
        keys.sort_by(|a, b| (a.created_unix_ms, &a.key_id).cmp(&(b.created_unix_ms, &b.key_id)));
        keys
    }

    /// Revokes a key (at once, for every call after this one); revoking twice keeps the
    /// first time.
    pub fn revoke(&self, key_id: &str) -> Result<ApiKey> {
        let mut key = self
            .read()
            .get(key_id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("no API key {key_id:?} (see keys list)")))?;
        if key.revoked_unix_ms.is_none() {
            key.revoked_unix_ms = Some(now_unix_ms());
            self.put(&key)?;
        }
        Ok(key)
    }

    /// The key a caller's secret belongs to, if it is one and can be used now; else why
    /// not, in words for the caller. The secret's hash is compared in constant time.
    pub fn verify(&self, secret: &str) -> std::result::Result<ApiKey, String> {
        let malformed =
            || "the bearer token is not a reelforge API key (rf_<id>_<64 hex digits>)".to_string();
        let rest = secret.strip_prefix(PREFIX).ok_or_else(malformed)?;
        let (key_id, _) = rest.split_once('_').ok_or_else(malformed)?;
        let key = self
            .read()
            .get(key_id)
            .cloned()
            .ok_or_else(|| "unknown API key".to_string())?;
        let given = Sha256::digest(secret.as_bytes());
        let stored = hex::decode(&key.sha256).unwrap_or_default();
        if !constant_time_eq(&given, &stored) {
            return Err("unknown API key".to_string());
        }
        match key.unusable(now_unix_ms()) {
            Some(why) => Err(why),
            None => Ok(key),
        }
    }

    fn put(&self, key: &ApiKey) -> Result<()> {
        let bytes = serde_json::to_vec(key).map_err(|e| Error::internal(e.to_string()))?;
        self.tree.insert(key.key_id.as_bytes(), bytes)?;
        self.tree.flush()?;
        self.by_id
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.key_id.clone(), key.clone());
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, ApiKey>> {
        self.by_id.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Equal lengths and bytes, in time that depends only on the length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::open(&sled::Config::new().temporary(true).open().unwrap()).unwrap()
    }

    fn new(tenant: &str, role: Role) -> NewKey {
        NewKey {
            tenant: tenant.into(),
            role,
            expires_in_seconds: None,
            note: String::new(),
            max_concurrent_jobs: 0,
        }
    }

    #[test]
    fn a_key_verifies_until_revoked_and_only_its_hash_is_stored() {
        let keys = keys();
        assert!(!keys.any());
        let made = keys.create(new("acme", Role::Write)).unwrap();
        assert!(made.secret.starts_with("rf_") && made.secret.len() == 3 + 12 + 1 + 64);
        let stored: Vec<u8> = keys.tree.iter().next().unwrap().unwrap().1.to_vec();
        let stored = String::from_utf8(stored).unwrap();
        assert!(
            !stored.contains(&made.secret[16..]),
            "the secret is not stored"
        );
        let key = keys.verify(&made.secret).unwrap();
        assert_eq!((key.tenant.as_str(), key.role), ("acme", Role::Write));
        // One changed digit is another key.
        let mut wrong = made.secret.clone();
        let last = if wrong.ends_with('0') { "1" } else { "0" };
        wrong.replace_range(wrong.len() - 1.., last);
        assert_eq!(keys.verify(&wrong).unwrap_err(), "unknown API key");
        assert!(keys.verify("Bearer x").unwrap_err().contains("rf_<id>_"));
        keys.revoke(&key.key_id).unwrap();
        assert!(keys.verify(&made.secret).unwrap_err().contains("revoked"));
        assert!(keys.any());
        assert_eq!(keys.list(Some("acme")).len(), 1);
        assert!(keys.list(Some("other")).is_empty());
    }

    #[test]
    fn expired_keys_and_bad_names_are_refused() {
        let keys = keys();
        let made = keys.create(new("acme", Role::Read)).unwrap();
        let mut key = made.key.clone();
        key.expires_unix_ms = Some(now_unix_ms() - 5_000);
        keys.put(&key).unwrap();
        assert!(keys
            .verify(&made.secret)
            .unwrap_err()
            .contains("expired (5 s ago)"));
        for bad in ["", "a b", "../x", &"x".repeat(65), "-x"] {
            assert!(keys.create(new(bad, Role::Read)).is_err(), "{bad:?}");
        }
        assert!(Role::parse("ADMIN").is_ok() && Role::parse("root").is_err());
        assert!(Role::Admin > Role::Write && Role::Write > Role::Read);
    }
}
