//! Property test of the visibility rule end to end, over real sockets against an embedded
//! gateway: random users (member, club, admin; any guilds, none included) connect, join and
//! leave guilds (reconnecting), send (admin-only or not, to guilds in or out of their
//! membership, over the socket or `POST /api/guilds/{id}/messages`), resume and read history.
//! Checked throughout: every send is answered as the contract says; no frame and no history
//! page shows an admin-only message to a non-admin or a guild's message to someone the gateway's
//! own rule (`Caller::may_read`) does not let read it; nothing arrives twice on a connection; and
//! everything a connection should get (live, or replayed by a resume) does arrive.

mod support;

use std::collections::{BTreeSet, HashSet};

use chat_shared::protocol::identity::Role;
use chat_shared::protocol::{ErrorCode, SequencedMessage, ServerFrame};
use chat_shared::store::Session;
use gateway::http::auth::Caller;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use support::client::{Client, Connect};
use support::{Deployment, Embedded, Scope, TestUser, user};

/// Guilds `0..JOINABLE` may be in a membership; the last one never is.
const GUILDS: usize = 4;
const JOINABLE: usize = 3;
const CASES: u32 = 16;

#[derive(Debug, Clone)]
enum Op {
    Join {
        user: usize,
        guild: usize,
    },
    Leave {
        user: usize,
        guild: usize,
    },
    Send {
        user: usize,
        guild: usize,
        admin_only: bool,
    },
    Resume {
        user: usize,
        guild: usize,
        after: Option<usize>,
    },
    History {
        user: usize,
        guild: usize,
        before: Option<usize>,
        limit: usize,
    },
}

#[derive(Debug, Clone)]
struct Scenario {
    users: Vec<(Role, BTreeSet<usize>)>,
    ops: Vec<Op>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let role = prop_oneof![Just(Role::Member), Just(Role::Club), Just(Role::Admin)];
    let member = (
        role,
        proptest::collection::btree_set(0..JOINABLE, 0..=JOINABLE),
    );
    proptest::collection::vec(member, 2..=4).prop_flat_map(|users| {
        let n = users.len();
        let op = prop_oneof![
            1 => (0..n, 0..JOINABLE).prop_map(|(user, guild)| Op::Join { user, guild }),
            1 => (0..n, 0..JOINABLE).prop_map(|(user, guild)| Op::Leave { user, guild }),
            4 => (0..n, 0..GUILDS, any::<bool>())
                .prop_map(|(user, guild, admin_only)| Op::Send { user, guild, admin_only }),
            2 => (0..n, 0..GUILDS, proptest::option::of(any::<usize>()))
                .prop_map(|(user, guild, after)| Op::Resume { user, guild, after }),
            2 => (0..n, 0..GUILDS, proptest::option::of(any::<usize>()), 1..6usize)
                .prop_map(|(user, guild, before, limit)| Op::History { user, guild, before, limit }),
        ];
        proptest::collection::vec(op, 1..24).prop_map(move |ops| Scenario {
            users: users.clone(),
            ops,
        })
    })
}

/// An accepted message, as the test remembers it.
#[derive(Debug, Clone)]
struct Stored {
    guild: usize,
    seq: u64,
    admin_only: bool,
    message_id: String,
}

/// An open connection and what it must receive.
struct Conn {
    client: Client,
    caller: Caller,
    /// Log length when it opened: later messages of its guilds arrive live.
    opened_at: usize,
    /// Accepted resumes: (guild, position, log length at the time).
    resumes: Vec<(usize, u64, usize)>,
}

struct Person {
    user: TestUser,
    guilds: BTreeSet<usize>,
    conn: Option<Conn>,
}

impl Person {
    fn is_admin(&self) -> bool {
        self.user.info.is_admin()
    }

    /// The contract's rule, stated independently of the gateway's code.
    fn may_read(&self, guild: usize) -> bool {
        self.is_admin() || self.guilds.contains(&guild)
    }
}

/// One scenario against the shared deployment, with names of its own.
struct Case<'a> {
    d: &'a Embedded,
    guilds: Vec<String>,
    people: Vec<Person>,
    log: Vec<Stored>,
    http: reqwest::Client,
}

fn fail(what: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(what.to_string())
}

impl Case<'_> {
    fn guild_names(&self, set: &BTreeSet<usize>) -> Vec<String> {
        set.iter().map(|g| self.guilds[*g].clone()).collect()
    }

    fn position(&self, pick: Option<usize>) -> u64 {
        match pick {
            Some(i) if !self.log.is_empty() => self.log[i % self.log.len()].seq,
            _ => 0,
        }
    }

    async fn open(&mut self, who: usize) -> Result<(), TestCaseError> {
        let opened_at = self.log.len();
        let names = self.guild_names(&self.people[who].guilds);
        let person = &mut self.people[who];
        match person.user.try_connect(self.d, 0, Connect::default()).await {
            Ok(client) => {
                prop_assert_eq!(client.hello.admin, person.is_admin());
                let hello: BTreeSet<&String> = client.hello.guilds.iter().collect();
                prop_assert_eq!(hello, names.iter().collect::<BTreeSet<_>>(), "hello guilds");
                let caller = Caller {
                    user: person.user.info.clone(),
                    guilds: client.hello.guilds.clone(),
                    exp: u64::MAX,
                };
                person.conn = Some(Conn {
                    client,
                    caller,
                    opened_at,
                    resumes: Vec::new(),
                });
            }
            Err(refusal) => {
                prop_assert!(
                    !person.is_admin() && person.guilds.is_empty(),
                    "refused: {refusal:?}"
                );
                prop_assert_eq!(
                    (refusal.status, refusal.error.as_str()),
                    (403, "no_guild_context")
                );
            }
        }
        Ok(())
    }

    async fn set_guilds(
        &mut self,
        who: usize,
        guilds: BTreeSet<usize>,
    ) -> Result<(), TestCaseError> {
        let names = self.guild_names(&guilds);
        let store = self.d.store();
        let id = self.people[who].user.info.id.clone();
        let stored = if names.is_empty() {
            store.delete(&id).await
        } else {
            store.put(&id, &Session::with_guilds(names)).await
        };
        stored.map_err(fail)?;
        self.people[who].guilds = guilds;
        if let Some(mut conn) = self.people[who].conn.take() {
            conn.client.round_trip().await;
            let got = drain(&mut conn.client, Vec::new()).await;
            check_safe(&conn, &got)?;
        }
        self.open(who).await
    }

    async fn send(
        &mut self,
        who: usize,
        guild: usize,
        admin_only: bool,
        n: usize,
    ) -> Result<(), TestCaseError> {
        let person = &self.people[who];
        let expected = if !person.is_admin() && !person.guilds.contains(&guild) {
            Err(ErrorCode::ForbiddenGuild)
        } else if admin_only && !person.is_admin() {
            Err(ErrorCode::AdminOnlyForbidden)
        } else {
            Ok(())
        };
        let text = format!("text {n}");
        let token = self.people[who].user.token.clone();
        let got = match &mut self.people[who].conn {
            Some(conn) => conn
                .client
                .request(
                    json!({"guildId": self.guilds[guild], "text": text, "adminOnly": admin_only}),
                )
                .await
                .map(|ack| (ack.message_id, ack.seq))
                .map_err(|e| e.code),
            None => {
                post(
                    &self.http,
                    self.d,
                    &token,
                    &self.guilds[guild],
                    &text,
                    admin_only,
                )
                .await?
            }
        };
        match (expected, got) {
            (Err(want), Err(code)) => prop_assert_eq!(code, want),
            (Ok(()), Ok((message_id, seq))) => self.log.push(Stored {
                guild,
                seq,
                admin_only,
                message_id,
            }),
            (want, got) => prop_assert!(
                false,
                "send to guild {guild}: expected {want:?}, got {got:?}"
            ),
        }
        Ok(())
    }

    async fn resume(
        &mut self,
        who: usize,
        guild: usize,
        after: Option<usize>,
    ) -> Result<(), TestCaseError> {
        let position = self.position(after);
        let name = self.guilds[guild].clone();
        let allowed = self.people[who].may_read(guild);
        let log_len = self.log.len();
        let Some(conn) = &mut self.people[who].conn else {
            return Ok(());
        };
        conn.client
            .send_value(json!({"type": "resume", "positions": {name.clone(): position}}))
            .await;
        let answer = conn
            .client
            .wait_for(|f| match f {
                ServerFrame::Resumed(r) => r.guild_id == name,
                ServerFrame::Error(e) => e.guild_id.as_deref() == Some(name.as_str()),
                _ => false,
            })
            .await;
        match answer {
            ServerFrame::Resumed(_) => {
                prop_assert!(allowed, "resumed a guild the user may not read");
                conn.resumes.push((guild, position, log_len));
            }
            ServerFrame::Error(e) => {
                prop_assert!(!allowed, "resume refused: {e:?}");
                prop_assert_eq!(e.code, ErrorCode::ForbiddenGuild);
            }
            _ => unreachable!(),
        }
        Ok(())
    }

    async fn history(
        &self,
        who: usize,
        guild: usize,
        before: Option<usize>,
        limit: usize,
    ) -> Result<(), TestCaseError> {
        let person = &self.people[who];
        // `before` must be ≥ 1: with nothing stored yet, read the newest page.
        let before = before
            .map(|pick| self.position(Some(pick)))
            .filter(|b| *b > 0);
        let mut url = format!(
            "{}/api/guilds/{}/messages?limit={limit}",
            self.d.gateway(0),
            self.guilds[guild]
        );
        if let Some(before) = before {
            url.push_str(&format!("&before={before}"));
        }
        let response = self
            .http
            .get(url)
            .bearer_auth(&person.user.token)
            .send()
            .await
            .map_err(fail)?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.map_err(fail)?;
        if !person.may_read(guild) {
            prop_assert_eq!((status, &body), (403, &json!({"error": "forbidden_guild"})));
            return Ok(());
        }
        prop_assert_eq!(status, 200, "history: {}", body);
        let page: Vec<SequencedMessage> =
            serde_json::from_value(body["messages"].clone()).map_err(fail)?;
        for m in &page {
            prop_assert!(
                person.is_admin() || !m.message.admin_only,
                "history showed an admin-only message"
            );
            prop_assert_eq!(&m.message.guild_id, &self.guilds[guild]);
        }
        let older: Vec<&str> = self
            .log
            .iter()
            .rev()
            .filter(|m| m.guild == guild && (person.is_admin() || !m.admin_only))
            .filter(|m| before.is_none_or(|b| m.seq < b))
            .map(|m| m.message_id.as_str())
            .collect();
        let got: Vec<&str> = page.iter().map(|m| m.message.message_id.as_str()).collect();
        prop_assert_eq!(&got[..], &older[..older.len().min(limit)], "history page");
        prop_assert_eq!(body["hasMore"].as_bool(), Some(older.len() > limit));
        Ok(())
    }

    /// Posts a public and then an admin-only message in every guild, as an admin who is on no
    /// connection: when a connection has its last fence of a guild, it has everything before.
    async fn fences(&mut self, fence_admin: &TestUser) -> Result<Vec<[String; 2]>, TestCaseError> {
        let mut fences = Vec::new();
        for guild in 0..GUILDS {
            let mut pair = [String::new(), String::new()];
            for (slot, admin_only) in [false, true].into_iter().enumerate() {
                let posted = post(
                    &self.http,
                    self.d,
                    &fence_admin.token,
                    &self.guilds[guild],
                    "fence",
                    admin_only,
                )
                .await?;
                let (message_id, seq) =
                    posted.map_err(|code| fail(format!("fence refused: {code}")))?;
                pair[slot] = message_id.clone();
                self.log.push(Stored {
                    guild,
                    seq,
                    admin_only,
                    message_id,
                });
            }
            fences.push(pair);
        }
        Ok(fences)
    }

    /// What a connection must have received by the end: its guilds' visible messages since it
    /// opened (admins: every admin-only message too), and what its resumes replayed.
    fn owed(&self, conn: &Conn) -> HashSet<String> {
        let admin = conn.caller.is_admin();
        let member = |g: usize| conn.caller.guilds.contains(&self.guilds[g]);
        let live = self.log[conn.opened_at..].iter().filter(|m| {
            if admin {
                member(m.guild) || m.admin_only
            } else {
                member(m.guild) && !m.admin_only
            }
        });
        let replayed = conn.resumes.iter().flat_map(|(g, position, log_len)| {
            self.log[..*log_len]
                .iter()
                .filter(move |m| m.guild == *g && m.seq > *position && (admin || !m.admin_only))
        });
        live.chain(replayed).map(|m| m.message_id.clone()).collect()
    }

    async fn settle(&mut self, who: usize, fences: &[[String; 2]]) -> Result<(), TestCaseError> {
        let Some(mut conn) = self.people[who].conn.take() else {
            return Ok(());
        };
        let mut got = Vec::new();
        for (g, [public, admin_only]) in fences.iter().enumerate() {
            let last = if conn.caller.is_admin() {
                admin_only
            } else if conn.caller.guilds.contains(&self.guilds[g]) {
                public
            } else {
                continue;
            };
            let fence = conn
                .client
                .wait_for(|f| matches!(f, ServerFrame::Message(m) if &m.message.message_id == last))
                .await;
            if let ServerFrame::Message(m) = fence {
                got.push(m);
            }
        }
        let got = drain(&mut conn.client, got).await;
        check_safe(&conn, &got)?;
        let received: HashSet<String> = got.iter().map(|m| m.message.message_id.clone()).collect();
        let missing: Vec<String> = self.owed(&conn).difference(&received).cloned().collect();
        // Where each missing one is in the log (index, guild, seq, admin-only), and what the
        // connection did, so a failure says which rule lost it.
        let placed: Vec<String> = (self.log.iter().enumerate())
            .filter(|(_, m)| missing.contains(&m.message_id))
            .map(|(i, m)| {
                format!(
                    "#{i} g{} seq {} admin_only {}",
                    m.guild, m.seq, m.admin_only
                )
            })
            .collect();
        prop_assert!(
            missing.is_empty(),
            "connection of user {who} never got {missing:?} ({placed:?}; opened at #{}, resumes (guild, after, log length) {:?}, {} received)",
            conn.opened_at,
            conn.resumes,
            got.len()
        );
        Ok(())
    }
}

/// The `message` frames received and not yet taken, after `got`.
async fn drain(client: &mut Client, mut got: Vec<SequencedMessage>) -> Vec<SequencedMessage> {
    while client.stashed_messages() > 0 {
        got.push(client.message().await);
    }
    got
}

/// Nothing a connection received breaks the rule, and nothing arrived twice.
fn check_safe(conn: &Conn, got: &[SequencedMessage]) -> Result<(), TestCaseError> {
    let mut seen = HashSet::new();
    for m in got {
        let message = &m.message;
        prop_assert!(
            conn.caller.may_read(&message.guild_id),
            "message of {} to a non-member",
            message.guild_id
        );
        prop_assert!(
            conn.caller.is_admin() || !message.admin_only,
            "admin-only message to a non-admin"
        );
        prop_assert!(
            seen.insert(message.message_id.clone()),
            "{} delivered twice",
            message.message_id
        );
    }
    Ok(())
}

/// `POST /api/guilds/{id}/messages`: `(messageId, seq)` or the error code.
async fn post(
    http: &reqwest::Client,
    d: &Embedded,
    token: &str,
    guild: &str,
    text: &str,
    admin_only: bool,
) -> Result<Result<(String, u64), ErrorCode>, TestCaseError> {
    let response = http
        .post(format!("{}/api/guilds/{guild}/messages", d.gateway(0)))
        .bearer_auth(token)
        .json(&json!({"text": text, "adminOnly": admin_only}))
        .send()
        .await
        .map_err(fail)?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.map_err(fail)?;
    if status == 201 {
        let id = body["messageId"]
            .as_str()
            .ok_or_else(|| fail("no messageId"))?;
        let seq = body["seq"].as_u64().ok_or_else(|| fail("no seq"))?;
        return Ok(Ok((id.to_owned(), seq)));
    }
    serde_json::from_value(body["error"].clone())
        .map(Err)
        .map_err(fail)
}

async fn run(d: &Embedded, scenario: Scenario) -> Result<(), TestCaseError> {
    let scope = Scope::new();
    let guilds: Vec<String> = (0..GUILDS).map(|g| scope.guild(&format!("g{g}"))).collect();
    let mut people = Vec::new();
    for (i, (role, member_of)) in scenario.users.iter().enumerate() {
        let names: Vec<&str> = member_of.iter().map(|g| guilds[*g].as_str()).collect();
        let user = user(d, &scope.user_id(&format!("u{i}")), *role, &names).await;
        people.push(Person {
            user,
            guilds: member_of.clone(),
            conn: None,
        });
    }
    let mut case = Case {
        d,
        guilds,
        people,
        log: Vec::new(),
        http: support::http(),
    };
    for who in 0..case.people.len() {
        case.open(who).await?;
    }
    for (n, op) in scenario.ops.into_iter().enumerate() {
        match op {
            Op::Join { user, guild } | Op::Leave { user, guild } => {
                let mut set = case.people[user].guilds.clone();
                if matches!(op, Op::Join { .. }) {
                    set.insert(guild);
                } else {
                    set.remove(&guild);
                }
                case.set_guilds(user, set).await?
            }
            Op::Send {
                user,
                guild,
                admin_only,
            } => case.send(user, guild, admin_only, n).await?,
            Op::Resume { user, guild, after } => case.resume(user, guild, after).await?,
            Op::History {
                user,
                guild,
                before,
                limit,
            } => case.history(user, guild, before, limit).await?,
        }
    }
    let fence_admin = user(d, &scope.user_id("fence"), Role::Admin, &[]).await;
    let fences = case.fences(&fence_admin).await?;
    for who in 0..case.people.len() {
        case.settle(who, &fences).await?;
    }
    Ok(())
}

#[test]
fn sockets_never_show_what_the_reader_may_not_see() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let d = runtime.block_on(Embedded::start_with(
        |config| {
            config.send_rate_per_sec = 10_000;
            config.send_limits.user_send_rate_per_sec = 0;
            config.send_burst = 10_000;
            // Scenarios resume many times on one connection.
            config.outbound.resume_frames_per_min = 1_000_000;
        },
        true,
    ));
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&scenario(), |scenario| runtime.block_on(run(&d, scenario)));
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
