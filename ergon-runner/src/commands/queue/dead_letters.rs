//! `queue stats | dead-letters | requeue-dead`: through the [`QueueAdmin`] of any
//! connector whose transport keeps dead letters.

use std::collections::BTreeMap;
use std::sync::Arc;

use ergon_connectors::jsonl::Payload;
use ergon_core::TaskError;
use ergon_core::queue_admin::QueueAdmin;
use serde::Serialize;

use super::failed;
use crate::config::{ConfigError, LoadedConfig};
use crate::plan::{ConnectorRef, configure_connectors};
use crate::registry::Registry;

/// The connectors of the file whose transport keeps dead letters (the named ones, or all
/// of them when `names` is empty), each with its administration opened.
async fn admins(
    loaded: &LoadedConfig,
    registry: &Registry,
    names: &[String],
) -> Result<Vec<(String, Result<Arc<dyn QueueAdmin>, TaskError>)>, ConfigError> {
    let connectors = configure_connectors(loaded, registry)?;
    let mut opened = Vec::new();
    if names.is_empty() {
        for (name, connector) in connectors {
            match connector.make.admin().await {
                Ok(Some(admin)) => opened.push((name, Ok(admin))),
                Ok(None) => {}
                Err(err) => opened.push((name, Err(err))),
            }
        }
        return Ok(opened);
    }
    for name in names {
        let admin = admin_of(loaded, &connectors, name).await;
        opened.push((name.clone(), admin?));
    }
    Ok(opened)
}

/// Opens the administration of `[connectors.NAME]`: an unknown name and a transport without
/// dead letters are config errors, an unreachable transport is the connector's error.
async fn admin_of(
    loaded: &LoadedConfig,
    connectors: &BTreeMap<String, ConnectorRef>,
    name: &str,
) -> Result<Result<Arc<dyn QueueAdmin>, TaskError>, ConfigError> {
    let at = |key: String, message: String| ConfigError::new(&loaded.file, key, message);
    let connector = connectors.get(name).ok_or_else(|| {
        let known: Vec<&str> = connectors.keys().map(String::as_str).collect();
        at(
            format!("connectors.{name}"),
            format!("no such connector; the file defines {known:?}"),
        )
    })?;
    Ok(match connector.make.admin().await {
        Ok(Some(admin)) => Ok(admin),
        Ok(None) => {
            return Err(at(
                format!("connectors.{name}.type"),
                format!(
                    "a `{}` connector keeps no queue or dead letters for `queue` to work on",
                    connector.kind
                ),
            ));
        }
        Err(err) => Err(err),
    })
}

/// Opens the administration of one named connector, its transport's error as the
/// connector's.
async fn one_admin(
    loaded: &LoadedConfig,
    registry: &Registry,
    name: &str,
) -> Result<Arc<dyn QueueAdmin>, ConfigError> {
    let connectors = configure_connectors(loaded, registry)?;
    admin_of(loaded, &connectors, name)
        .await?
        .map_err(failed(loaded, name, "cannot reach"))
}

/// One line per connector that keeps dead letters (all of them when `connectors` is
/// empty), with its transport's counts (a local queue: ready, in flight, expired leases,
/// dead letters), or the error that kept it from answering. Returns the text and the exit
/// code: 1 when a connector did not answer.
///
/// # Errors
///
/// An unknown connector, or one whose transport keeps no dead letters.
pub async fn stats(
    loaded: &LoadedConfig,
    registry: &Registry,
    connectors: &[String],
) -> Result<(String, u8), ConfigError> {
    let mut out = String::new();
    let mut code = 0;
    for (name, admin) in admins(loaded, registry, connectors).await? {
        let stats = match admin {
            Ok(admin) => admin.stats().await,
            Err(err) => Err(err),
        };
        match stats {
            Ok(stats) => out.push_str(&format!("{name:<20} {stats}\n")),
            Err(err) => {
                code = 1;
                out.push_str(&format!("{name:<20} error: {}\n", err.chain()));
            }
        }
    }
    Ok((out, code))
}

/// One line of `queue dead-letters`.
#[derive(Serialize)]
struct Listed<'a> {
    id: &'a str,
    deliveries: u32,
    /// The failure as stored (a JSON object), or null when the transport kept none.
    failure: Option<&'a serde_json::Value>,
    failed_at_ms: Option<i64>,
    payload: Payload<'a>,
    payload_encoding: &'static str,
}

/// The dead letters of `connector`, oldest first, one JSON object per line; the payload
/// is written as the file connector writes dead letters, so that its exact bytes can be
/// decoded back ([`decode`](ergon_connectors::jsonl::decode)).
///
/// # Errors
///
/// An unknown connector, one that keeps no dead letters, or a transport that cannot be
/// read.
pub async fn dead_letters(
    loaded: &LoadedConfig,
    registry: &Registry,
    connector: &str,
    limit: usize,
) -> Result<String, ConfigError> {
    let admin = one_admin(loaded, registry, connector).await?;
    let dead = admin
        .dead_letters(limit)
        .await
        .map_err(failed(loaded, connector, "cannot read"))?;
    let mut out = String::new();
    for letter in &dead {
        let payload = Payload::of(&letter.payload);
        let listed = Listed {
            id: &letter.id,
            deliveries: letter.deliveries,
            failure: letter.failure.as_ref(),
            failed_at_ms: letter.failed_at_ms,
            payload_encoding: payload.encoding(),
            payload,
        };
        let line = serde_json::to_string(&listed).map_err(failed(
            loaded,
            connector,
            "cannot encode a dead letter",
        ))?;
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// Puts every dead letter of `connector` back at the end of its queue.
///
/// # Errors
///
/// An unknown connector, one that keeps no dead letters, or a transport that cannot be
/// written.
pub async fn requeue_dead(
    loaded: &LoadedConfig,
    registry: &Registry,
    connector: &str,
) -> Result<String, ConfigError> {
    let admin = one_admin(loaded, registry, connector).await?;
    let moved = admin
        .requeue_dead()
        .await
        .map_err(failed(loaded, connector, "cannot requeue"))?;
    let stats = admin
        .stats()
        .await
        .map_err(failed(loaded, connector, "cannot read"))?;
    Ok(format!(
        "requeued {moved} dead letter(s) into {connector} (queue {})\n",
        stats.queue
    ))
}
