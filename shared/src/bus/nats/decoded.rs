//! Turns a core NATS subscription into a stream of decoded payloads: what does not decode is
//! logged, counted and skipped, so one bad payload never ends a subscription. Dropping the
//! returned stream unsubscribes.

use std::sync::Arc;

use async_nats::{Message, Subscriber};
use futures::StreamExt;
use serde::de::DeserializeOwned;

use super::payload::{DropCounters, DropKind, Versioned, decode};
use crate::bus::BoxStream;

/// Decodes each message as `T`, then `convert`s it (which may also skip it).
pub fn decoded<T, U, F>(
    subscriber: Subscriber,
    drops: Arc<DropCounters>,
    kind: DropKind,
    convert: F,
) -> BoxStream<U>
where
    T: DeserializeOwned + Versioned,
    U: Send + 'static,
    F: Fn(T, Message) -> Option<U> + Send + 'static,
{
    Box::pin(subscriber.filter_map(move |message| {
        let item = match decode::<T>(&message.payload) {
            Ok(value) => convert(value, message),
            Err(error) => {
                drops.record(kind, message.subject.as_str(), &error);
                None
            }
        };
        futures::future::ready(item)
    }))
}
