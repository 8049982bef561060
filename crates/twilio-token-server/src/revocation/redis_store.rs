//! The deny lists in two Redis hashes, shared by every replica.
//!
//! `<prefix>:revoked:identities` maps an identity to `<before>:<revoked_at>`, with `-` as
//! `before` when every token is revoked. `<prefix>:revoked:jtis` maps a `jti` to its
//! `revoked_at`.

use std::collections::HashMap;
use std::fmt;

use redis::AsyncCommands as _;

use super::{IdentityEntry, RevocationError, RevocationList};
use crate::redis_conn::RedisConn;

/// Deletes the identity entries whose `before` is below `ARGV[1]`, except the identity `ARGV[2]`
/// just written, in one atomic step, so that an entry another process writes meanwhile is never
/// deleted by mistake.
const PRUNE_IDENTITIES: &str = r"
local entries = redis.call('HGETALL', KEYS[1])
local cutoff = tonumber(ARGV[1])
for i = 1, #entries, 2 do
  local before = string.match(entries[i + 1], '^(%d+):')
  if before and tonumber(before) < cutoff and entries[i] ~= ARGV[2] then
    redis.call('HDEL', KEYS[1], entries[i])
  end
end
";

/// The deny lists in Redis.
pub struct RedisRevocations {
    conn: RedisConn,
    identities_key: String,
    jtis_key: String,
    prune_identities: redis::Script,
}

impl fmt::Debug for RedisRevocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocations")
            .field("identities_key", &self.identities_key)
            .finish_non_exhaustive()
    }
}

impl RedisRevocations {
    pub(crate) fn new(conn: RedisConn, prefix: &str) -> Self {
        RedisRevocations {
            conn,
            identities_key: format!("{prefix}:revoked:identities"),
            jtis_key: format!("{prefix}:revoked:jtis"),
            prune_identities: redis::Script::new(PRUNE_IDENTITIES),
        }
    }

    async fn call<T, F, Fut>(&self, action: &'static str, task: F) -> Result<T, RevocationError>
    where
        F: Fn(redis::aio::ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.conn
            .call(task)
            .await
            .ok_or_else(|| RevocationError::Store {
                action,
                cause: "redis does not answer".into(),
            })
    }

    pub(super) async fn revoke_identity(
        &self,
        identity: &str,
        entry: IdentityEntry,
    ) -> Result<(), RevocationError> {
        let before = entry
            .before
            .map_or_else(|| "-".to_owned(), |before| before.to_string());
        let value = &format!("{before}:{}", entry.revoked_at);
        self.call("writing the identity entry", |mut connection| async move {
            connection
                .hset::<_, _, _, ()>(&self.identities_key, identity, value)
                .await
        })
        .await?;
        let expired_before = entry.revoked_at.saturating_sub(super::JTI_ENTRY_SECS);
        let mut invocation = self.prune_identities.key(&self.identities_key);
        invocation.arg(expired_before).arg(identity);
        let invocation = &invocation;
        self.call(
            "removing expired identity entries",
            |mut connection| async move { invocation.invoke_async::<()>(&mut connection).await },
        )
        .await
    }

    pub(super) async fn revoke_jti(&self, jti: &str, now: u64) -> Result<(), RevocationError> {
        self.call("writing the jti entry", |mut connection| async move {
            connection
                .hset_nx::<_, _, _, ()>(&self.jtis_key, jti, now)
                .await
        })
        .await?;
        let expired_before = now.saturating_sub(super::JTI_ENTRY_SECS);
        self.call(
            "removing expired jti entries",
            |mut connection| async move {
                let entries: HashMap<String, u64> = connection.hgetall(&self.jtis_key).await?;
                let expired: Vec<&String> = entries
                    .iter()
                    .filter(|(_, revoked_at)| **revoked_at < expired_before)
                    .map(|(jti, _)| jti)
                    .collect();
                if expired.is_empty() {
                    return Ok(());
                }
                connection.hdel::<_, _, ()>(&self.jtis_key, expired).await
            },
        )
        .await
    }

    pub(super) async fn remove_identity(&self, identity: &str) -> Result<bool, RevocationError> {
        self.call("removing the identity entry", |mut connection| async move {
            connection
                .hdel::<_, _, u64>(&self.identities_key, identity)
                .await
        })
        .await
        .map(|removed| removed > 0)
    }

    pub(super) async fn remove_jti(&self, jti: &str) -> Result<bool, RevocationError> {
        self.call("removing the jti entry", |mut connection| async move {
            connection.hdel::<_, _, u64>(&self.jtis_key, jti).await
        })
        .await
        .map(|removed| removed > 0)
    }

    pub(super) async fn load(&self) -> Result<RevocationList, RevocationError> {
        let (identities, jtis) = self
            .call("reading the revocation list", |mut connection| async move {
                let identities: HashMap<String, String> =
                    connection.hgetall(&self.identities_key).await?;
                let jtis: HashMap<String, u64> = connection.hgetall(&self.jtis_key).await?;
                Ok((identities, jtis))
            })
            .await?;
        let mut list = RevocationList {
            identities: HashMap::with_capacity(identities.len()),
            jtis,
        };
        for (identity, value) in identities {
            let Some(entry) = parse_identity_entry(&value) else {
                tracing::warn!(%identity, "ignoring a malformed identity entry in Redis");
                continue;
            };
            list.identities.insert(identity, entry);
        }
        Ok(list)
    }
}

fn parse_identity_entry(value: &str) -> Option<IdentityEntry> {
    let (before, revoked_at) = value.split_once(':')?;
    let before = match before {
        "-" => None,
        secs => Some(secs.parse().ok()?),
    };
    Some(IdentityEntry {
        before,
        revoked_at: revoked_at.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_entry_values_parse() {
        assert_eq!(
            parse_identity_entry("-:10"),
            Some(IdentityEntry {
                before: None,
                revoked_at: 10
            })
        );
        assert_eq!(
            parse_identity_entry("20:10"),
            Some(IdentityEntry {
                before: Some(20),
                revoked_at: 10
            })
        );
        assert_eq!(parse_identity_entry("x:10"), None);
        assert_eq!(parse_identity_entry("20"), None);
    }
}
