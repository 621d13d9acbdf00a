//! The contract suite: every rule of DESIGN.md checked over real sockets, written once and run
//! against each deployment (embedded, distributed). Isolation is checked without sleeping: after
//! the message a client must not see, a marker is posted where it may see; the marker must be
//! the next message it gets.

#![allow(dead_code)]

pub mod handshake;
pub mod history;
pub mod messaging;
pub mod resume;

use chat_shared::protocol::SequencedMessage;

use crate::support::client::Client;

/// Asserts the next message `client` receives is `marker_id` (nothing slipped in before it).
pub async fn next_is(client: &mut Client, marker_id: &str) -> SequencedMessage {
    let next = client.message().await;
    assert_eq!(
        next.message.message_id, marker_id,
        "unexpected message before the marker: {next:?}"
    );
    next
}

/// Generates one `#[tokio::test]` per contract case for a deployment constructor.
#[macro_export]
macro_rules! contract_tests {
    ($deploy:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let deployment = $deploy.await;
                contract::$module::$case(&deployment).await;
            }
        )*
    };
}
