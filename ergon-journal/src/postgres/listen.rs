//! Hearing other processes' commits: a connection that `LISTEN`s on the journal's
//! channel and wakes this process's in-step waits and relay on each notification.
//! Without it they still look every second; with it a member completed on another
//! machine wakes its waiter within a round trip.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};

use super::Place;
use super::schema::OUTBOX_PAYLOAD;

/// How long it waits before it connects again after losing its connection.
const RECONNECT: Duration = Duration::from_secs(1);

/// Listens until the task is aborted (with the journal), connecting again whenever the
/// connection is lost.
pub(super) async fn listen(
    config: tokio_postgres::Config,
    place: Arc<Place>,
    committed: Arc<Notify>,
    relay: Arc<Notify>,
) {
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (committed, relay) = (committed.clone(), relay.clone());
                let messages = tokio::spawn(async move {
                    while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
                        match message {
                            Ok(AsyncMessage::Notification(note)) => {
                                committed.notify_waiters();
                                if note.payload() == OUTBOX_PAYLOAD {
                                    relay.notify_one();
                                }
                            }
                            Ok(_) => {}
                            Err(err) => return err.to_string(),
                        }
                    }
                    "connection closed".to_owned()
                });
                let listening = client
                    .batch_execute(&format!("LISTEN {}", place.channel))
                    .await;
                let lost = match listening {
                    Ok(()) => messages.await.unwrap_or_else(|err| err.to_string()),
                    Err(err) => {
                        messages.abort();
                        err.to_string()
                    }
                };
                tracing::warn!(journal = %place, error = lost, "Journal listener disconnected; connecting again");
            }
            Err(err) => {
                tracing::warn!(journal = %place, error = %err, "Journal listener cannot connect; trying again");
            }
        }
        tokio::time::sleep(RECONNECT).await;
    }
}
