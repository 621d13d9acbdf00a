//! Live delivery of appended entries to gateways: core NATS (at most once) on
//! `chat.deliver.{guild}`, and admin-only entries also on `chat.admin.{guild}`; one bus message
//! carries all the entries of one append (a record's worth), decoded once per gateway. A
//! gateway that misses one sees the `prev` gap and fills it from the log.

use super::NatsBus;
use super::connection::{ensure_connected, round_trip};
use super::decoded::decoded;
use super::errors::unavailable;
use super::payload::{Delivery, DropKind, encode};
use super::subjects::{ADMIN_ALL, admin_subject, deliver_subject};
use super::trace_headers;
use crate::bus::{BoxStream, BusError, LogEntry, Topic};

impl NatsBus {
    /// Delivers consecutive entries of one guild (one append's worth) in one message, and
    /// the admin-only ones among them in one more.
    #[tracing::instrument(name = "bus.publish", skip_all,
        fields(guild = entries.first().map_or("", |e| e.message.guild_id.as_str()),
            entries = entries.len()))]
    pub(super) async fn deliver(&self, entries: &[LogEntry]) -> Result<(), BusError> {
        ensure_connected(&self.client)?;
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let guild = &first.message.guild_id;
        let headers = trace_headers::current_headers();
        let payload = encode(&Delivery::of(entries))?;
        self.publish_traced(deliver_subject(guild), headers.clone(), payload)
            .await
            .map_err(|e| unavailable("publishing a delivery", e))?;
        if entries.iter().any(|e| e.message.admin_only) {
            let admin = Delivery::of(entries.iter().filter(|e| e.message.admin_only));
            self.publish_traced(admin_subject(guild), headers, encode(&admin)?)
                .await
                .map_err(|e| unavailable("publishing an admin delivery", e))?;
        }
        Ok(())
    }

    /// A core publish, with the trace headers when there are any.
    async fn publish_traced(
        &self,
        subject: String,
        headers: Option<async_nats::HeaderMap>,
        payload: bytes::Bytes,
    ) -> Result<(), async_nats::PublishError> {
        match headers {
            Some(headers) => {
                self.client
                    .publish_with_headers(subject, headers, payload)
                    .await
            }
            None => self.client.publish(subject, payload).await,
        }
    }

    pub(super) async fn subscribe_topic(
        &self,
        topic: Topic,
    ) -> Result<BoxStream<LogEntry>, BusError> {
        let subject = match &topic {
            Topic::Guild(guild) => deliver_subject(guild),
            Topic::AdminOnly => ADMIN_ALL.to_owned(),
        };
        let subscriber = self
            .client
            .subscribe(subject)
            .await
            .map_err(|e| unavailable("subscribing to deliveries", e))?;
        round_trip(&self.client).await?;
        Ok(decoded(
            subscriber,
            self.drops.clone(),
            DropKind::Delivery,
            |delivery: Delivery, message| {
                let trace = trace_headers::extract(message.headers.as_ref());
                delivery
                    .into_entries()
                    .map(move |mut entry| {
                        entry.trace = trace.clone();
                        entry
                    })
                    .collect::<Vec<_>>()
            },
        ))
    }
}
