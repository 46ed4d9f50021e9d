//! Session takeover: a CONNECT whose client id is already connected, connecting or
//! disconnecting takes the session over (MQTT 3.1.1 and 5, §3.1.4), instead of being refused
//! with "server unavailable" as rmqtt 0.24 does in two races.
//!
//! Owns [`TakeoverShared`], the broker's session registry: rmqtt's own `DefaultShared` with its
//! [`Entry`] wrapped, installed in place of the default when the broker starts (rmqtt makes the
//! registry pluggable for its cluster plugins). Everything except two entry methods is passed
//! through unchanged, so routing, delivery and the session map are rmqtt's — except that a
//! device's own publish is not routed at all, since on this broker nothing can subscribe to it
//! (see [`TakeoverShared`]'s `forwards`).
//!
//! The two races, both reproduced by `tests/takeover.rs` (the handshake benchmark, which never
//! overlaps connects of one client id, hits the second):
//! - **connects of one client id overlap**: rmqtt serialises connects per client id with a
//!   mutex it only *tries* to lock, refusing the loser ("operation would block").
//!   [`Entry::try_lock`] here retries until the handshake timeout instead (at most
//!   [`MAX_WAITING`] connects wait at once). Each attempt is rmqtt's own atomic try-lock, so its
//!   mutual exclusion is unchanged. While it waits, the connect holds nothing the session being
//!   replaced or the connect holding the lock needs: no per-client lock, no session state, only
//!   (in rmqtt's caller) a read guard on the registry, which nothing writes after start-up.
//! - **the old session is already ending**: the connect sends the old session a kick and waits
//!   for its answer, but a session past its event loop (it has read a DISCONNECT, or its socket
//!   closed) never reads the kick and drops it; rmqtt reports that as an error ("recv kick
//!   result is RecvError") and refuses the connect. When the kick fails *and* the old session's
//!   channel is closed, it has ended; [`Entry::kick`] here kicks once more, which finds it gone
//!   and clears what is left, as for a session that had ended a moment earlier.
//!
//! Refuses: changing *which* connection wins (the last to take the lock, as in rmqtt), and
//! counting takeovers (the kicked session reports its reason to the `ClientDisconnected` hook;
//! see [`hooks`](crate::hooks)).
//!
//! Cost: nothing on the publish path (forwarding is passed straight through); an uncontended
//! connect takes the lock at the first try as before. Each entry lookup (three per connect)
//! costs one small allocation and one reference-count increment more than rmqtt's.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use rmqtt::{
    Result,
    context::ServerContext,
    session::Session,
    shared::{DefaultShared, Entry, RetainLoadCallback, Shared},
    types::{
        ForwardedCount, ForwardedRecipients, From, FromType, HealthInfo, Id, IsAdmin, MsgID,
        NodeHealthStatus, NodeId, OfflineSession, Publish, Reason, Retain, SessionStatus,
        SubRelations, SubRelationsMap, SubsSearchParams, SubsSearchResult, Subscribe,
        SubscribeReturn, To, TopicFilter, TopicName, Tx, Unsubscribe,
    },
};

/// First pause between lock attempts; doubled up to [`MAX_PAUSE`]. A connect holds the lock
/// for about a millisecond (kick round trip, session set-up), so most waiters get it at once.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
const MAX_PAUSE: Duration = Duration::from_millis(10);

/// Most connects waiting for a lock at once, over all client ids. Each waiter holds one of
/// rmqtt's handshake workers (`max_handshaking_limit`, 1000 here); without a cap, a storm of
/// connects with one certificate (a cloned device) could hold them all and stall everyone
/// else's handshakes. Past the cap a conflicting connect is refused at once, as rmqtt did.
const MAX_WAITING: usize = 64;

/// rmqtt's session registry with takeover instead of refusal; see the module docs.
pub(crate) struct TakeoverShared {
    inner: DefaultShared,
    waits: Arc<Waits>,
    /// Whether clients' own publishes are routed to subscribers: on the lab broker they are;
    /// on the device broker nothing can subscribe to them (see `forwards`).
    route_client_publishes: bool,
}

/// What every entry of one broker shares about waiting for a lock.
struct Waits {
    /// How long a connect waits for another connect of the same client id: the handshake
    /// timeout, so a connect still ends within about twice the deadline it already has.
    limit: Duration,
    /// Connects waiting now (see [`MAX_WAITING`]).
    waiting: AtomicUsize,
}

/// Replaces `scx`'s session registry with [`TakeoverShared`]. Call once, after
/// `ServerContextBuilder::build` (which installs rmqtt's default) and before the listener runs:
/// the registry is behind a lock every connect and publish reads, and nothing may be holding it.
/// `route_client_publishes: false` is for the device broker only (see `forwards`).
pub(crate) async fn install(
    scx: &ServerContext,
    lock_wait: Duration,
    route_client_publishes: bool,
) {
    let shared = TakeoverShared {
        route_client_publishes,
        inner: DefaultShared::new(Some(scx.clone())),
        waits: Arc::new(Waits {
            limit: lock_wait,
            waiting: AtomicUsize::new(0),
        }),
    };
    *scx.extends.shared_mut().await = Box::new(shared);
}

/// One client id's entry; see the module docs for what differs from rmqtt's.
struct TakeoverEntry {
    inner: Box<dyn Entry>,
    waits: Arc<Waits>,
}

impl TakeoverEntry {
    fn locked(&self, inner: Box<dyn Entry>) -> Box<dyn Entry> {
        Box::new(TakeoverEntry {
            inner,
            waits: self.waits.clone(),
        })
    }
}

/// A connect counted in [`Waits::waiting`]; uncounted when dropped, also when rmqtt drops the
/// handshake mid-wait.
struct Waiter<'a>(&'a AtomicUsize);

impl<'a> Waiter<'a> {
    fn enter(waiting: &'a AtomicUsize) -> Option<Waiter<'a>> {
        if waiting.fetch_add(1, Ordering::Relaxed) < MAX_WAITING {
            Some(Waiter(waiting))
        } else {
            waiting.fetch_sub(1, Ordering::Relaxed);
            None
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl Entry for TakeoverEntry {
    async fn try_lock(&self) -> Result<Box<dyn Entry>> {
        // The common case, uncontended: exactly rmqtt's cost.
        let mut refused = match self.inner.try_lock().await {
            Ok(locked) => return Ok(self.locked(locked)),
            Err(e) => e,
        };
        let id = self.inner.id();
        let client_id = &id.client_id;
        let Some(_waiter) = Waiter::enter(&self.waits.waiting) else {
            tracing::warn!(%client_id, "Too many connects waiting for a session lock; refusing");
            return Err(refused);
        };
        let deadline = Instant::now() + self.waits.limit;
        let mut pause = FIRST_PAUSE;
        while Instant::now() + pause <= deadline {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
            match self.inner.try_lock().await {
                Ok(locked) => return Ok(self.locked(locked)),
                Err(e) => refused = e,
            }
        }
        tracing::warn!(
            %client_id,
            waited = ?self.waits.limit,
            "Another connection of this client id held the session lock too long"
        );
        Err(refused)
    }

    async fn kick(
        &mut self,
        clean_start: bool,
        clear_subscriptions: bool,
        is_admin: IsAdmin,
    ) -> Result<OfflineSession> {
        match self
            .inner
            .kick(clean_start, clear_subscriptions, is_admin)
            .await
        {
            // A closed channel means the old session's task has ended, so the failure was
            // its dropping the unread kick (see the module docs), not a session still running.
            Err(e) if self.inner.tx().is_none_or(|tx| tx.is_closed()) => {
                tracing::debug!(
                    client_id = %self.inner.id().client_id,
                    error = %e,
                    "The session to take over ended during the kick; kicking again"
                );
                self.inner
                    .kick(clean_start, clear_subscriptions, is_admin)
                    .await
            }
            other => other,
        }
    }

    fn id(&self) -> Id {
        self.inner.id()
    }

    fn id_same(&self) -> Option<bool> {
        self.inner.id_same()
    }

    async fn set(&mut self, session: Session, tx: Tx) -> Result<()> {
        self.inner.set(session, tx).await
    }

    async fn remove(&mut self) -> Result<Option<(Session, Tx)>> {
        self.inner.remove().await
    }

    async fn remove_with(&mut self, id: &Id) -> Result<Option<(Session, Tx)>> {
        self.inner.remove_with(id).await
    }

    async fn online(&self) -> bool {
        self.inner.online().await
    }

    async fn is_connected(&self) -> bool {
        self.inner.is_connected().await
    }

    fn session(&self) -> Option<Session> {
        self.inner.session()
    }

    fn exist(&self) -> bool {
        self.inner.exist()
    }

    fn tx(&self) -> Option<Tx> {
        self.inner.tx()
    }

    async fn subscribe(&self, subscribe: &Subscribe) -> Result<SubscribeReturn> {
        self.inner.subscribe(subscribe).await
    }

    async fn unsubscribe(&self, unsubscribe: &Unsubscribe) -> Result<bool> {
        self.inner.unsubscribe(unsubscribe).await
    }

    async fn publish(
        &self,
        from: From,
        p: Publish,
    ) -> std::result::Result<(), (From, Publish, Reason)> {
        self.inner.publish(from, p).await
    }

    async fn subscriptions(&self) -> Option<Vec<SubsSearchResult>> {
        self.inner.subscriptions().await
    }
}

/// Delivery failures, as rmqtt's `Shared` reports them.
type Undelivered = Vec<(To, From, Publish, Reason)>;

#[async_trait]
impl Shared for TakeoverShared {
    fn entry(&self, id: Id) -> Box<dyn Entry> {
        Box::new(TakeoverEntry {
            inner: self.inner.entry(id),
            waits: self.waits.clone(),
        })
    }

    fn exist(&self, client_id: &str) -> bool {
        self.inner.exist(client_id)
    }

    async fn forwards(
        &self,
        msg_id: Option<MsgID>,
        from: From,
        publish: Publish,
    ) -> std::result::Result<ForwardedCount, (ForwardedCount, Undelivered)> {
        // A device's own publish (one that passed Garrison's ACL) cannot have a subscriber on
        // this broker: a device may subscribe only to its own `cmd`/`update`, which devices may
        // not publish to, and the lab listener is a separate broker. The intake already has
        // the message (the ACL hook handed it over before this point), so matching it against
        // the subscription tree would only cost time: a quarter of the broker's CPU at QoS 0.
        // Messages from the server itself (`FromType::System`) are routed as usual, and so is
        // everything on the lab broker, a general-purpose broker.
        if !self.route_client_publishes && matches!(from.typ(), FromType::Custom) {
            return Ok(0);
        }
        self.inner.forwards(msg_id, from, publish).await
    }

    async fn forwards_and_get_shareds(
        &self,
        from: From,
        publish: Publish,
    ) -> std::result::Result<
        (SubRelationsMap, ForwardedRecipients),
        (ForwardedRecipients, Undelivered),
    > {
        self.inner.forwards_and_get_shareds(from, publish).await
    }

    async fn forwards_to(
        &self,
        from: From,
        publish: &Publish,
        relations: SubRelations,
        msg_id: Option<MsgID>,
    ) -> std::result::Result<ForwardedRecipients, (ForwardedRecipients, Undelivered)> {
        self.inner
            .forwards_to(from, publish, relations, msg_id)
            .await
    }

    fn iter(&self) -> Box<dyn Iterator<Item = Box<dyn Entry>> + Sync + Send + '_> {
        self.inner.iter()
    }

    fn random_session(&self) -> Option<Session> {
        self.inner.random_session()
    }

    async fn session_status(&self, client_id: &str) -> Option<SessionStatus> {
        self.inner.session_status(client_id).await
    }

    async fn client_states_count(&self) -> usize {
        self.inner.client_states_count().await
    }

    fn sessions_count(&self) -> usize {
        self.inner.sessions_count()
    }

    async fn query_subscriptions(&self, q: &SubsSearchParams) -> Vec<SubsSearchResult> {
        self.inner.query_subscriptions(q).await
    }

    async fn subscriptions_count(&self) -> usize {
        self.inner.subscriptions_count().await
    }

    fn grpc_enable(&self) -> bool {
        self.inner.grpc_enable()
    }

    fn node_name(&self, id: NodeId) -> String {
        self.inner.node_name(id)
    }

    async fn check_health(&self) -> Result<HealthInfo> {
        self.inner.check_health().await
    }

    async fn health_status(&self) -> Result<NodeHealthStatus> {
        self.inner.health_status().await
    }

    fn operation_is_busy(&self) -> bool {
        self.inner.operation_is_busy()
    }

    async fn retain_load_with(
        &self,
        topic_filter: &TopicFilter,
        cb: Arc<dyn RetainLoadCallback>,
    ) -> Result<Vec<(NodeId, MsgID)>> {
        self.inner.retain_load_with(topic_filter, cb).await
    }

    async fn retain_set_broadcast(
        &self,
        topic: &TopicName,
        retain: &Retain,
        expiry_interval: Option<Duration>,
    ) -> Result<()> {
        self.inner
            .retain_set_broadcast(topic, retain, expiry_interval)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_are_capped_and_uncounted_when_dropped() {
        let waiting = AtomicUsize::new(0);
        let admitted: Vec<_> = (0..MAX_WAITING)
            .map(|_| Waiter::enter(&waiting).expect("under the cap"))
            .collect();
        assert!(Waiter::enter(&waiting).is_none(), "one past the cap");
        assert_eq!(waiting.load(Ordering::Relaxed), MAX_WAITING);
        drop(admitted);
        assert_eq!(waiting.load(Ordering::Relaxed), 0);
        assert!(Waiter::enter(&waiting).is_some());
    }
}
