//! `ergon-runner queue stats | dead-letters | requeue-dead` on a Redis stream.

use std::sync::Arc;

use async_trait::async_trait;
use redis::RedisError;
use redis::aio::ConnectionManager;

use ergon_core::TaskError;
use ergon_core::queue_admin::{DeadLetter, QueueAdmin, QueueStats};

use super::commands;
use super::config::RedisStreamsConfig;
use super::entry::{self, Entry};

/// Dead letters moved back per atomic step of [`QueueAdmin::requeue_dead`].
const REQUEUE_BATCH: usize = 100;

/// The administration of one `[connectors.NAME]` stream, its group and its dead letters.
pub(crate) struct StreamAdmin {
    config: Arc<RedisStreamsConfig>,
    name: String,
    group: String,
    dead_letter_stream: String,
    conn: ConnectionManager,
}

impl StreamAdmin {
    /// Connects to the connector's server; reads and changes nothing yet.
    pub(crate) async fn connect(
        config: Arc<RedisStreamsConfig>,
        name: &str,
    ) -> Result<Self, TaskError> {
        let conn = commands::connect(&config, config.command_timeout)
            .await
            .map_err(|err| {
                TaskError::system(format!(
                    "redis_streams {name}: cannot connect to {}",
                    config.url
                ))
                .with_source(err)
            })?;
        Ok(Self {
            group: config.group.clone().unwrap_or_else(|| name.to_owned()),
            dead_letter_stream: config.dead_letter_stream(),
            name: name.to_owned(),
            config,
            conn,
        })
    }

    fn error(&self, what: &str, err: RedisError) -> TaskError {
        TaskError::system(format!(
            "redis_streams {} (stream {}): {what}",
            self.name, self.config.stream
        ))
        .with_source(err)
    }

    /// Up to `count` dead letters, oldest first.
    async fn oldest_dead(&self, count: usize) -> Result<Vec<Entry>, RedisError> {
        let range: redis::Value = redis::cmd("XRANGE")
            .arg(&self.dead_letter_stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(entry::range_reply(range))
    }
}

#[async_trait]
impl QueueAdmin for StreamAdmin {
    /// `length` (entries in the stream), `pending` (delivered to the group, not settled),
    /// `lag` (not delivered to the group yet; left out when Redis cannot tell) and `dead`.
    async fn stats(&self) -> Result<QueueStats, TaskError> {
        let mut conn = self.conn.clone();
        let read = async {
            let length: u64 = redis::cmd("XLEN")
                .arg(&self.config.stream)
                .query_async(&mut conn)
                .await?;
            let dead: u64 = redis::cmd("XLEN")
                .arg(&self.dead_letter_stream)
                .query_async(&mut conn)
                .await?;
            let group = commands::group_info(&mut conn, &self.config.stream, &self.group).await?;
            Ok::<_, RedisError>((length, dead, group))
        };
        let (length, dead, group) = read
            .await
            .map_err(|err| self.error("cannot read the stream's state", err))?;
        let mut stats = QueueStats::new(self.config.stream.clone()).count("length", length);
        match group {
            Some(group) => {
                stats = stats.count("pending", group.pending as u64);
                if let Some(lag) = group.lag {
                    stats = stats.count("lag", lag as u64);
                }
            }
            // No group yet: nothing was delivered, everything waits.
            None => stats = stats.count("pending", 0).count("lag", length),
        }
        Ok(stats.count("dead", dead))
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, TaskError> {
        let entries = self
            .oldest_dead(limit)
            .await
            .map_err(|err| self.error("cannot read the dead letters", err))?;
        Ok(entries
            .into_iter()
            .map(|entry| DeadLetter {
                id: entry.id,
                deliveries: entry.carried,
                failure: entry
                    .failure
                    .and_then(|json| serde_json::from_slice(&json).ok()),
                failed_at_ms: entry.failed_at,
                payload: entry.payload.to_vec(),
            })
            .collect())
    }

    /// Moves the dead letters back to the stream's tail, `id`, `payload` and `metadata`
    /// only (delivery count reset), a batch at a time: each batch's adds and deletes in one
    /// `MULTI`, so a dead letter is never both lost and never in both streams.
    async fn requeue_dead(&self) -> Result<u64, TaskError> {
        let mut moved = 0;
        loop {
            let entries = self
                .oldest_dead(REQUEUE_BATCH)
                .await
                .map_err(|err| self.error("cannot read the dead letters", err))?;
            if entries.is_empty() {
                return Ok(moved);
            }
            let mut pipe = redis::pipe();
            pipe.atomic();
            let mut ids = Vec::with_capacity(entries.len());
            for entry in entries {
                let fields = vec![
                    (entry::ID, bytes::Bytes::from(entry.id)),
                    (entry::PAYLOAD, entry.payload),
                    (entry::METADATA, entry.metadata.unwrap_or_default()),
                ];
                commands::add(&mut pipe, &self.config.stream, self.config.maxlen, &fields);
                ids.push(entry.entry_id);
            }
            pipe.cmd("XDEL")
                .arg(&self.dead_letter_stream)
                .arg(&ids)
                .ignore();
            pipe.query_async::<()>(&mut self.conn.clone())
                .await
                .map_err(|err| self.error("cannot requeue the dead letters", err))?;
            moved += ids.len() as u64;
        }
    }
}
