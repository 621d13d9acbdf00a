//! Sends from a gateway to a router and the answer back (`submit` / `ingress`).

use chat_shared::bus::{INTERNAL_VERSION, SendAck, SendOutcome, SendRequest};
use chat_shared::protocol::ErrorCode;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::support::*;

fn send(guild: Option<&str>, id: &str) -> SendRequest {
    SendRequest {
        v: INTERNAL_VERSION,
        sender: user("u1"),
        guild_id: guild.map(str::to_owned),
        text: Some("hi".into()),
        admin_only: false,
        request_bot: true,
        message_id: Some(id.to_owned()),
        member_verified: true,
    }
}

pub async fn a_send_reaches_a_router_and_its_ack_travels_back(d: &impl Deployment) {
    let gateway = d.bus().await;
    let router = d.bus().await;
    let mut items = router.ingress().await.unwrap();
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut seq = 0;
        while let Some(item) = items.next().await {
            seq += 1;
            let _ = seen_tx.send(item.request.clone());
            let ack = SendAck {
                message_id: item.request.message_id.unwrap_or_default(),
                seq,
            };
            item.reply.reply(Ok(ack)).await;
        }
    });

    for (i, guild) in ["g1", "g2", "g1"].into_iter().enumerate() {
        let id = format!("m{i}");
        let outcome = gateway.submit(send(Some(guild), &id)).await.unwrap();
        let expected = SendAck {
            message_id: id.clone(),
            seq: i as u64 + 1,
        };
        assert_eq!(outcome, Ok(expected));
        assert_eq!(received(&mut seen_rx).await, send(Some(guild), &id));
    }
}

pub async fn errors_and_guildless_sends_travel_back(d: &impl Deployment) {
    let gateway = d.bus().await;
    let router = d.bus().await;
    let mut items = router.ingress().await.unwrap();
    tokio::spawn(async move {
        while let Some(item) = items.next().await {
            assert_eq!(item.request.guild_id, None);
            item.reply.reply(Err(ErrorCode::MissingGuild)).await;
        }
    });

    let outcome: SendOutcome = gateway.submit(send(None, "m1")).await.unwrap();

    assert_eq!(outcome, Err(ErrorCode::MissingGuild));
}
