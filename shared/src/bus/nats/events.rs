//! User events (revocation, membership changes, notices) on `session.events.{user}`, core
//! NATS, applied live by every gateway.

use super::NatsBus;
use super::connection::{ensure_connected, round_trip};
use super::decoded::decoded;
use super::errors::unavailable;
use super::payload::{DropKind, UserEventPayload, encode};
use super::subjects::{USER_EVENTS_ALL, user_event_subject};
use crate::bus::{BoxStream, BusError, INTERNAL_VERSION, UserEvent};

impl NatsBus {
    #[tracing::instrument(name = "bus.user_event", skip(self, event))]
    pub(super) async fn send_user_event(
        &self,
        user_id: &str,
        event: UserEvent,
    ) -> Result<(), BusError> {
        ensure_connected(&self.client)?;
        let payload = encode(&UserEventPayload {
            v: INTERNAL_VERSION,
            user: user_id.to_owned(),
            event,
        })?;
        self.client
            .publish(user_event_subject(user_id), payload)
            .await
            .map_err(|e| unavailable("publishing a user event", e))
    }

    pub(super) async fn subscribe_user_events(
        &self,
    ) -> Result<BoxStream<(String, UserEvent)>, BusError> {
        let subscriber = self
            .client
            .subscribe(USER_EVENTS_ALL)
            .await
            .map_err(|e| unavailable("subscribing to user events", e))?;
        round_trip(&self.client).await?;
        Ok(decoded(
            subscriber,
            self.drops.clone(),
            DropKind::UserEvents,
            |payload: UserEventPayload, _| Some((payload.user, payload.event)),
        ))
    }
}
