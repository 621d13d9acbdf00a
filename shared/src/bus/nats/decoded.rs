//! Turns a core NATS subscription into a stream of decoded payloads: what does not decode is
//! logged, counted and skipped, so one bad payload never ends a subscription. Dropping the
//! returned stream unsubscribes.

use std::sync::Arc;

use async_nats::{Message, Subscriber};
use futures::StreamExt;
use serde::de::DeserializeOwned;

use super::payload::{DropCounters, DropKind, Versioned, decode};
use crate::bus::BoxStream;

/// Decodes each message as `T`, then `convert`s it into any number of items (an `Option`
/// skips or keeps one).
pub fn decoded<T, U, I, F>(
    subscriber: Subscriber,
    drops: Arc<DropCounters>,
    kind: DropKind,
    convert: F,
) -> BoxStream<U>
where
    T: DeserializeOwned + Versioned,
    U: Send + 'static,
    I: IntoIterator<Item = U>,
    I::IntoIter: Send + 'static,
    F: Fn(T, Message) -> I + Send + 'static,
{
    Box::pin(subscriber.flat_map(move |message| {
        let items = match decode::<T>(&message.payload) {
            Ok(value) => Some(convert(value, message).into_iter()),
            Err(error) => {
                drops.record(kind, message.subject.as_str(), &error);
                None
            }
        };
        futures::stream::iter(items.into_iter().flatten())
    }))
}
