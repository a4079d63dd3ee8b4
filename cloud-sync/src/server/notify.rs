//! The serving hub's one `LISTEN` connection: what other processes on the same database tell
//! it. `head:<version>` — a merge committed (another `stayos-hub serve`, or `changes import`
//! run while serving): long-polls wake and pulls reach that version. `revoked:<node_id>` —
//! `revoke-node` committed: the node's remembered credential is dropped, so the revocation
//! takes effect on its next request.
//!
//! The connection is not from the pool: notifications arrive on the connection that listens,
//! and only a connection whose messages we poll ourselves hands them over. While it is down
//! no credential is remembered (a revocation could go unheard); it reconnects with backoff.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Poll, ready};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::db::{NOTIFY_CHANNEL, pg_message};
use crate::nodes::CredentialCache;
use crate::store::Store;

/// How often the listening connection is checked: a connection that died without closing
/// (a half-open TCP connection) is noticed within this time.
const PING_EVERY: Duration = Duration::from_secs(10);
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Listens until the task is aborted.
pub fn spawn(
    config: tokio_postgres::Config,
    store: Store,
    credentials: Arc<CredentialCache>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(250);
        loop {
            let outcome = listen(&config, &store, &credentials, &mut backoff).await;
            credentials.set_listening(false);
            match outcome {
                Ok(()) => tracing::warn!("the notification connection closed; reconnecting"),
                Err(err) => tracing::warn!(
                    error = %pg_message(&err),
                    "the notification connection failed; remembering no credentials until it is back"
                ),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

/// One connection's life: connect, `LISTEN`, then handle notifications until it ends.
async fn listen(
    config: &tokio_postgres::Config,
    store: &Store,
    credentials: &CredentialCache,
    backoff: &mut Duration,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let mut driver = std::pin::pin!(poll_fn(move |cx| {
        loop {
            match ready!(connection.poll_message(cx)) {
                Some(Ok(AsyncMessage::Notification(n))) => handle(n.payload(), store, credentials),
                Some(Ok(_)) => {}
                Some(Err(err)) => return Poll::Ready(Err(err)),
                None => return Poll::Ready(Ok(())),
            }
        }
    }));
    let sql = format!("LISTEN {NOTIFY_CHANNEL}");
    tokio::select! {
        listened = client.batch_execute(&sql) => listened?,
        ended = &mut driver => return ended,
    }
    credentials.set_listening(true);
    *backoff = Duration::from_millis(250);
    tracing::info!(channel = NOTIFY_CHANNEL, "listening for other hub processes");
    let mut ping = tokio::time::interval(PING_EVERY);
    loop {
        tokio::select! {
            ended = &mut driver => return ended,
            _ = ping.tick() => {
                let answered = tokio::select! {
                    answered = tokio::time::timeout(PING_EVERY, client.batch_execute("SELECT 1")) => answered,
                    ended = &mut driver => return ended,
                };
                match answered {
                    Ok(result) => result?,
                    Err(_) => {
                        tracing::warn!("the notification connection stopped answering");
                        return Ok(());
                    }
                }
            }
        }
    }
}

fn handle(payload: &str, store: &Store, credentials: &CredentialCache) {
    if let Some(node_id) = payload.strip_prefix("revoked:") {
        tracing::info!(node_id, "a node was revoked; its credential is no longer remembered");
        credentials.revoked(node_id);
    } else if let Some(version) = payload.strip_prefix("head:").and_then(|v| v.parse().ok()) {
        store.observe_head(version);
    } else {
        tracing::debug!(payload, "ignored an unknown notification");
    }
}
