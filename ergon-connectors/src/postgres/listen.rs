//! The wake-up: a dedicated connection `LISTEN`s on the schema's channel, and every
//! notification naming this queue bumps a counter that a waiting fetch watches.
//!
//! A fetch reads the counter *before* it claims, so a notification that arrives between an
//! empty claim and the wait is not missed. Notifications only shorten the wait: a fetch
//! that hears nothing looks again after `fetch_wait`, so a lost listener (it reconnects
//! every second) costs latency, never rows.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

use ergon_core::TaskError;

/// How long the listener waits before it connects again after losing its connection.
const RECONNECT: Duration = Duration::from_secs(1);

/// The listener of one connector: stopped when dropped.
pub(super) struct Listener {
    task: JoinHandle<()>,
    /// How many notifications for this queue were heard.
    heard: watch::Receiver<u64>,
}

impl Listener {
    /// Connects, listens on `channel`, and keeps listening (reconnecting) in a task.
    ///
    /// # Errors
    ///
    /// The first connection or its `LISTEN` fails (`place` names the database).
    pub(super) async fn start(
        config: tokio_postgres::Config,
        channel: String,
        queue: String,
        place: Arc<str>,
    ) -> Result<Self, TaskError> {
        let (bump, heard) = watch::channel(0);
        let first = listen_once(&config, &channel, &queue, bump.clone())
            .await
            .map_err(|err| {
                TaskError::system(format!("{place}: cannot LISTEN on {channel}")).with_source(err)
            })?;
        let task = tokio::spawn(async move {
            let mut lost = first.await.unwrap_or_else(|err| err.to_string());
            loop {
                tracing::warn!(queue = %place, error = lost, "Queue listener disconnected; connecting again");
                tokio::time::sleep(RECONNECT).await;
                lost = match listen_once(&config, &channel, &queue, bump.clone()).await {
                    Ok(running) => running.await.unwrap_or_else(|err| err.to_string()),
                    Err(err) => err.to_string(),
                };
            }
        });
        Ok(Self { task, heard })
    }

    /// A view of the counter for one fetch: read it, claim, then wait for a change.
    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.heard.clone()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects and listens; the returned task ends with why the connection was lost
/// (aborting it drops the client, which ends the connection).
async fn listen_once(
    config: &tokio_postgres::Config,
    channel: &str,
    queue: &str,
    bump: watch::Sender<u64>,
) -> Result<JoinHandle<String>, tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let queue = queue.to_owned();
    let messages = tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(note)) if note.payload() == queue => {
                    bump.send_modify(|n| *n += 1);
                }
                Ok(_) => {}
                Err(err) => return err.to_string(),
            }
        }
        "connection closed".to_owned()
    });
    // `channel` is `ergon_queue_<schema>`, a plain name (the schema is checked).
    if let Err(err) = client.batch_execute(&format!("LISTEN {channel}")).await {
        messages.abort();
        return Err(err);
    }
    Ok(tokio::spawn(async move {
        let _client = client;
        messages.await.unwrap_or_else(|err| err.to_string())
    }))
}
