//! Operation stores: `id -> latest Operation JSON`, shared by every worker, so that any of
//! them can check or wait for an operation another one started.
//!
//! The one rule a store enforces: `done` never reverts. A write of a not-done state over a
//! done one is ignored and the done state is returned, so a slow worker's stale poll result
//! cannot undo a finished operation. Entries expire `ttl` after their last write.
//!
//! Redis: `<prefix>:op:{<id>}` STRING, written by one Lua script (`PEXPIRE`d). PostgreSQL:
//! `<table_prefix>operations`, `INSERT ... ON CONFLICT (id) DO UPDATE ... WHERE NOT done`.
//!
//! Optional poll leases (one worker asks the provider per operation per lease period):
//! Redis `<prefix>:op:{<id>}:lease` set `NX PX`; PostgreSQL `<table_prefix>operation_leases`
//! (`id`, `until`), taken by an upsert that succeeds only once `until` has passed.

use std::sync::Arc;
use std::time::Duration;

use redis::Script;
use tokio::sync::OnceCell;

use super::model::Operation;
use crate::engines::block_on;
use crate::engines::postgres::{PgOptions, Postgres};
use crate::engines::redis::{Redis, RedisOptions, Retry};
use crate::errors::{Error, Result};

pub trait OperationStore: Send + Sync + 'static {
    /// Stores `operation` unless that would revert a done one; returns what is stored now.
    fn put(&self, operation: &Operation) -> Result<String>;

    /// The stored operation JSON, or `None` for an unknown or expired id.
    fn get(&self, id: &str) -> Result<Option<String>>;

    /// Takes the lease to poll the provider for `id` for `lease`: `true` for the one caller
    /// that gets it until it lapses (it is never released early, so the provider sees at
    /// most one check per lease period), `false` for everyone else meanwhile.
    fn try_lease(&self, id: &str, lease: Duration) -> Result<bool>;
}

fn check_id(id: &str) -> Result<&str> {
    if id.is_empty() || id.len() > 1024 || id.chars().any(char::is_control) {
        return Err(Error::InvalidOperation {
            detail: format!(
                "operation id must be 1-1024 bytes without control characters, not {:?}",
                id.chars().take(64).collect::<String>()
            ),
        });
    }
    Ok(id)
}

/// A record read back for `id`, checked to be that operation (an engine holds whatever was
/// written to it): anything else is [`Error::OperationCorrupt`], never a state to act on.
fn checked_record(id: &str, stored: String) -> Result<String> {
    let corrupt = |detail: String| Error::OperationCorrupt {
        id: id.to_owned(),
        detail,
    };
    let operation = Operation::from_json(&stored).map_err(|e| corrupt(e.to_string()))?;
    if operation.id != id {
        return Err(corrupt(format!(
            "it holds operation {:?}",
            operation.id.chars().take(64).collect::<String>()
        )));
    }
    Ok(stored)
}

fn check_ttl(ttl: Duration) -> Result<Duration> {
    if ttl < Duration::from_millis(1) {
        return Err(Error::InvalidArgument {
            detail: "ttl must be at least 1 ms".into(),
        });
    }
    Ok(ttl)
}

const PUT: &str = r#"
local current = redis.call('GET', KEYS[1])
if current and ARGV[2] == '0' then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' and decoded['done'] == true then
    return current
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return ARGV[1]
"#;

pub struct RedisOperationStore {
    redis: Redis,
    prefix: String,
    ttl: Duration,
    put: Script,
}

impl RedisOperationStore {
    pub fn open(url: &str, prefix: &str, ttl: Duration, options: RedisOptions) -> Result<Self> {
        if prefix.is_empty() || prefix.contains(['{', '}']) || prefix.chars().any(char::is_control)
        {
            return Err(Error::InvalidArgument {
                detail: format!(
                    "prefix must be non-empty, without braces or control characters, not {prefix:?}"
                ),
            });
        }
        Ok(RedisOperationStore {
            redis: Redis::open(url, options)?,
            prefix: prefix.to_owned(),
            ttl: check_ttl(ttl)?,
            put: Script::new(PUT),
        })
    }

    fn key(&self, id: &str) -> String {
        let escaped = id
            .replace('%', "%25")
            .replace('{', "%7B")
            .replace('}', "%7D");
        format!("{}:op:{{{escaped}}}", self.prefix)
    }
}

impl OperationStore for RedisOperationStore {
    fn put(&self, operation: &Operation) -> Result<String> {
        let key = self.key(check_id(&operation.id)?);
        let json = operation.to_json();
        let done = if operation.done == Some(true) {
            "1"
        } else {
            "0"
        };
        let ttl_ms = self.ttl.as_millis() as u64;
        // Idempotent (the same write twice stores the same thing): safe to retry.
        let stored = block_on(self.redis.run(Retry::Safe, async |conn| {
            self.put
                .key(&key)
                .arg(&json)
                .arg(done)
                .arg(ttl_ms)
                .invoke_async(conn)
                .await
        }))?;
        checked_record(&operation.id, stored)
    }

    fn get(&self, id: &str) -> Result<Option<String>> {
        let key = self.key(check_id(id)?);
        let stored: Option<String> = block_on(self.redis.run(Retry::Safe, async |conn| {
            redis::cmd("GET").arg(&key).query_async(conn).await
        }))?;
        stored.map(|stored| checked_record(id, stored)).transpose()
    }

    fn try_lease(&self, id: &str, lease: Duration) -> Result<bool> {
        // Same hash tag as the operation, so both live in one cluster slot.
        let key = format!("{}:lease", self.key(check_id(id)?));
        let ms = lease.as_millis().max(1) as u64;
        // Not retried: a lost reply may hide a lease we took; the caller then just skips
        // this poll, which the lease allows.
        let taken: Option<String> = block_on(self.redis.run(Retry::Never, async |conn| {
            redis::cmd("SET")
                .arg(&key)
                .arg(std::process::id())
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .query_async(conn)
                .await
        }))?;
        Ok(taken.is_some())
    }
}

/// Spells "gkop".
const SCHEMA_LOCK: i64 = 0x676b_6f70;

pub struct PostgresOperationStore {
    pg: Postgres,
    table: String,
    leases: String,
    ttl: Duration,
    schema: Arc<OnceCell<()>>,
}

impl PostgresOperationStore {
    pub fn open(dsn: &str, table_prefix: &str, ttl: Duration, options: PgOptions) -> Result<Self> {
        let valid = !table_prefix.is_empty()
            && table_prefix.len() <= 40
            && table_prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !table_prefix.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(Error::InvalidArgument {
                detail: format!(
                    "table_prefix must be 1-40 characters of a-z, 0-9 and _, not starting with a digit; got {table_prefix:?}"
                ),
            });
        }
        Ok(PostgresOperationStore {
            pg: Postgres::open(dsn, options)?,
            table: format!("{table_prefix}operations"),
            leases: format!("{table_prefix}operation_leases"),
            ttl: check_ttl(ttl)?,
            schema: Arc::new(OnceCell::new()),
        })
    }

    async fn ready(&self) -> Result<()> {
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {t} (
                id text PRIMARY KEY, action text, done boolean NOT NULL DEFAULT false,
                operation json NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),
                expires_at timestamptz);
             CREATE INDEX IF NOT EXISTS {t}_expires ON {t} (expires_at);
             CREATE TABLE IF NOT EXISTS {l} (id text PRIMARY KEY, until timestamptz NOT NULL);",
            t = self.table,
            l = self.leases
        );
        self.schema
            .get_or_try_init(|| async { self.pg.ensure_schema(SCHEMA_LOCK, &ddl).await })
            .await
            .map(|_| ())
    }
}

impl OperationStore for PostgresOperationStore {
    fn put(&self, operation: &Operation) -> Result<String> {
        let id = check_id(&operation.id)?.to_owned();
        let json = operation.to_json();
        let done = operation.done == Some(true);
        let ttl = self.ttl.as_secs_f64();
        // An expired row counts as absent, so it is overwritten whatever its state.
        let upsert = format!(
            "INSERT INTO {t} AS o (id, action, done, operation, expires_at)
             VALUES ($1, $2, $3, $4::text::json, now() + make_interval(secs => $5::float8))
             ON CONFLICT (id) DO UPDATE SET action = EXCLUDED.action, done = EXCLUDED.done,
                operation = EXCLUDED.operation, updated_at = now(), expires_at = EXCLUDED.expires_at
             WHERE NOT o.done OR EXCLUDED.done OR o.expires_at <= now()
             RETURNING operation::text",
            t = self.table
        );
        let current = format!("SELECT operation::text FROM {} WHERE id = $1", self.table);
        let stored = block_on(async {
            self.ready().await?;
            self.pg
                .transaction(async |tx| {
                    let written = tx
                        .query_opt(
                            &tx.prepare_cached(&upsert).await?,
                            &[&id, &operation.action, &done, &json, &ttl],
                        )
                        .await?;
                    match written {
                        Some(row) => Ok(row.try_get(0)?),
                        // The stored one is done and this write was not: keep it.
                        None => Ok(tx
                            .query_one(&tx.prepare_cached(&current).await?, &[&id])
                            .await?
                            .try_get::<_, Option<String>>(0)?
                            .unwrap_or_default()),
                    }
                })
                .await
        })?;
        checked_record(&id, stored)
    }

    fn get(&self, id: &str) -> Result<Option<String>> {
        let id = check_id(id)?;
        let select = format!(
            "SELECT operation::text FROM {} WHERE id = $1 AND (expires_at IS NULL OR expires_at > now())",
            self.table
        );
        let stored: Option<Option<String>> = block_on(async {
            self.ready().await?;
            self.pg
                .run(async |client| {
                    let row = client
                        .query_opt(&client.prepare_cached(&select).await?, &[&id])
                        .await?;
                    Ok(row.map(|r| r.try_get(0)).transpose()?)
                })
                .await
        })?;
        // A row whose operation is NULL is as corrupt as one holding something else.
        stored
            .map(|stored| checked_record(id, stored.unwrap_or_default()))
            .transpose()
    }

    fn try_lease(&self, id: &str, lease: Duration) -> Result<bool> {
        let id = check_id(id)?;
        let take = format!(
            "INSERT INTO {l} AS l (id, until) VALUES ($1, now() + make_interval(secs => $2::float8))
             ON CONFLICT (id) DO UPDATE SET until = EXCLUDED.until WHERE l.until <= now()
             RETURNING 1",
            l = self.leases
        );
        let seconds = lease.as_secs_f64();
        block_on(async {
            self.ready().await?;
            self.pg
                .run(async |client| {
                    Ok(client
                        .query_opt(&client.prepare_cached(&take).await?, &[&id, &seconds])
                        .await?
                        .is_some())
                })
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: &str, done: bool) -> Operation {
        Operation::from_json(&format!(
            r#"{{"id":"{id}","action":"/background-model/m","done":{done}}}"#
        ))
        .unwrap()
    }

    fn stores(tag: &str) -> Vec<Box<dyn OperationStore>> {
        let ttl = Duration::from_millis(600);
        vec![
            Box::new(
                RedisOperationStore::open(
                    "redis://127.0.0.1:6379/0",
                    &format!("gp-op-test-{tag}"),
                    ttl,
                    RedisOptions::default(),
                )
                .unwrap(),
            ),
            Box::new(
                PostgresOperationStore::open(
                    "postgresql://postgres@127.0.0.1:5432/postgres",
                    &format!("gp_op_test_{tag}_"),
                    ttl,
                    PgOptions::default(),
                )
                .unwrap(),
            ),
        ]
    }

    #[test]
    fn done_never_reverts_and_entries_expire() {
        let tag = std::process::id().to_string();
        let id = format!("op-{tag}");
        for store in stores(&tag) {
            assert!(store.get(&id).unwrap().is_none());
            store.put(&op(&id, false)).unwrap();
            assert!(store.get(&id).unwrap().unwrap().contains(r#""done":false"#));
            let done = store.put(&op(&id, true)).unwrap();
            assert!(done.contains(r#""done":true"#));
            // A stale not-done write is ignored; the done state comes back.
            let stale = store.put(&op(&id, false)).unwrap();
            assert!(stale.contains(r#""done":true"#), "{stale}");
            assert!(store.get(&id).unwrap().unwrap().contains(r#""done":true"#));
        }
        std::thread::sleep(Duration::from_millis(900));
        for store in stores(&tag) {
            assert!(store.get(&id).unwrap().is_none(), "expired");
        }
        let pg = Postgres::open(
            "postgresql://postgres@127.0.0.1:5432/postgres",
            PgOptions::default(),
        )
        .unwrap();
        block_on(pg.run(async |c| {
            c.batch_execute(&format!(
                "DROP TABLE IF EXISTS gp_op_test_{tag}_operations, gp_op_test_{tag}_operation_leases"
            ))
                .await?;
            Ok(())
        }))
        .unwrap();
    }
}
