//! The Redis commands the connector and its admin share: connecting, the group, adding
//! entries, moving one entry atomically, and what the group has left to do.

use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamInfoGroup, StreamInfoGroupsReply, StreamRangeReply};
use redis::{Pipeline, RedisError};

use super::config::RedisStreamsConfig;

/// A reconnecting connection whose commands fail after `response` without an answer.
pub(crate) async fn connect(
    config: &RedisStreamsConfig,
    response: Duration,
) -> Result<ConnectionManager, RedisError> {
    let client = redis::Client::open(config.url.expose())?;
    let manager = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.command_timeout))
        .set_response_timeout(Some(response))
        .set_number_of_retries(2);
    ConnectionManager::new_with_config(client, manager).await
}

/// Creates `group` on `stream` at its start (and the stream if it is missing); a group
/// that exists already is left as it is.
pub(crate) async fn create_group(
    conn: &mut ConnectionManager,
    stream: &str,
    group: &str,
) -> Result<(), RedisError> {
    let created: Result<(), RedisError> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

/// Adds `XADD <stream> [MAXLEN ~ n] * <fields>` to `pipe`.
pub(crate) fn add(
    pipe: &mut Pipeline,
    stream: &str,
    maxlen: Option<u64>,
    fields: &[(&'static str, Bytes)],
) {
    let xadd = pipe.cmd("XADD").arg(stream);
    if let Some(maxlen) = maxlen {
        xadd.arg("MAXLEN").arg("~").arg(maxlen);
    }
    xadd.arg("*");
    for (name, value) in fields {
        xadd.arg(*name).arg(value.as_ref());
    }
    xadd.ignore();
}

/// Acknowledges entry `ARGV[2]` of stream `KEYS[1]` for group `ARGV[1]` and, only if it
/// was still pending, deletes it (`ARGV[3] == "1"`) and adds the fields `ARGV[5..]` to
/// stream `KEYS[2]` (capped at `MAXLEN ~ ARGV[4]` unless that is empty): 1 if it was
/// moved, 0 if the entry was no longer pending. One script, so all or nothing.
const MOVE_SCRIPT: &str = r"
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
if ARGV[3] == '1' then redis.call('XDEL', KEYS[1], ARGV[2]) end
if ARGV[4] == '' then
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, 5))
else
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 5))
end
return 1
";

/// What [`move_entry`] moves, and where.
pub(crate) struct Move<'a> {
    /// The stream the entry is in.
    pub(crate) stream: &'a str,
    /// The group it is pending in.
    pub(crate) group: &'a str,
    /// Its id.
    pub(crate) entry_id: &'a str,
    /// Whether to delete it from `stream`.
    pub(crate) delete: bool,
    /// Where the new entry goes (`stream` itself for a requeue).
    pub(crate) to: &'a str,
    /// The cap of `to`.
    pub(crate) maxlen: Option<u64>,
    /// The new entry's fields.
    pub(crate) fields: Vec<(&'static str, Bytes)>,
}

/// Acknowledges (and deletes) an entry and adds a new one in one atomic step (see
/// [`MOVE_SCRIPT`]); `false` when the entry was no longer pending (acknowledged already).
pub(crate) async fn move_entry(
    conn: &mut ConnectionManager,
    step: Move<'_>,
) -> Result<bool, RedisError> {
    let mut eval = redis::cmd("EVAL");
    eval.arg(MOVE_SCRIPT)
        .arg(2)
        .arg(step.stream)
        .arg(step.to)
        .arg(step.group)
        .arg(step.entry_id)
        .arg(if step.delete { "1" } else { "0" })
        .arg(step.maxlen.map(|n| n.to_string()).unwrap_or_default());
    for (name, value) in &step.fields {
        eval.arg(*name).arg(value.as_ref());
    }
    let moved: i64 = eval.query_async(conn).await?;
    Ok(moved == 1)
}

/// The state of `group` on `stream`, `None` if the stream or the group does not exist.
pub(crate) async fn group_info(
    conn: &mut ConnectionManager,
    stream: &str,
    group: &str,
) -> Result<Option<StreamInfoGroup>, RedisError> {
    let exists: bool = redis::cmd("EXISTS").arg(stream).query_async(conn).await?;
    if !exists {
        return Ok(None);
    }
    let groups: StreamInfoGroupsReply = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(conn)
        .await?;
    Ok(groups.groups.into_iter().find(|g| g.name == group))
}

/// Entries of `stream` the group has not been delivered yet: its `lag` when Redis knows
/// it (7.0 and later, when no entry after the group's position was deleted), else whether
/// any entry follows the last one delivered (then 1, meaning "some").
pub(crate) async fn undelivered(
    conn: &mut ConnectionManager,
    stream: &str,
    group: &StreamInfoGroup,
) -> Result<u64, RedisError> {
    if let Some(lag) = group.lag {
        return Ok(lag as u64);
    }
    let next: StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg(format!("({}", group.last_delivered_id))
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(next.ids.len() as u64)
}
