//! Property tests of the visibility rule on the real router over the in-memory bus: whatever
//! random sequence of joins, leaves, sends (members, club members, admins and the bot; admin-only
//! or not; to guilds in or out of the sender's membership, with reused message ids), resumes and
//! history reads happens, the router accepts exactly the sends the contract allows, and no read
//! a reader is allowed to make shows an admin-only message to a non-admin or a message of a
//! guild the reader may not read. Reads are also compared with a model of the log, so a message
//! that is missing or out of order fails too.

use std::collections::{BTreeSet, HashMap};

use chat_shared::bus::MemoryBus;
use chat_shared::bus::{Bus, INTERNAL_VERSION, LogEntry, SendRequest, Visibility};
use chat_shared::protocol::ErrorCode;
use chat_shared::protocol::identity::{Role, UserInfo};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use router_worker::RouterConfig;
use tokio_util::sync::CancellationToken;

/// `g0`–`g2` may be in a membership; `g3` never is (only admins and the bot may post there).
const GUILDS: [&str; 4] = ["g0", "g1", "g2", "g3"];
const JOINABLE: usize = 3;
/// Larger than any log a scenario makes, so a forward read returns everything.
const READ_ALL: usize = 1_000;

#[derive(Debug, Clone)]
enum Sender {
    User(usize),
    Bot,
}

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
        sender: Sender,
        guild: usize,
        admin_only: bool,
        request_bot: bool,
        id: Option<u8>,
    },
    Resume {
        reader: usize,
        guild: usize,
        after: Option<usize>,
    },
    History {
        reader: usize,
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

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Member), Just(Role::Club), Just(Role::Admin)]
}

fn op(users: usize) -> impl Strategy<Value = Op> {
    let user = 0..users;
    let guild = 0..GUILDS.len();
    let sender = prop_oneof![4 => user.clone().prop_map(Sender::User), 1 => Just(Sender::Bot)];
    prop_oneof![
        1 => (user.clone(), 0..JOINABLE).prop_map(|(user, guild)| Op::Join { user, guild }),
        1 => (user.clone(), 0..JOINABLE).prop_map(|(user, guild)| Op::Leave { user, guild }),
        4 => (sender, guild.clone(), any::<bool>(), any::<bool>(), proptest::option::of(0..4u8))
            .prop_map(|(sender, guild, admin_only, request_bot, id)| Op::Send {
                sender, guild, admin_only, request_bot, id
            }),
        2 => (user.clone(), guild.clone(), proptest::option::of(any::<usize>()))
            .prop_map(|(reader, guild, after)| Op::Resume { reader, guild, after }),
        2 => (user, guild, proptest::option::of(any::<usize>()), 1..6usize)
            .prop_map(|(reader, guild, before, limit)| Op::History { reader, guild, before, limit }),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let member = (
        role(),
        proptest::collection::btree_set(0..JOINABLE, 0..=JOINABLE),
    );
    proptest::collection::vec(member, 2..=4).prop_flat_map(|users| {
        let n = users.len();
        proptest::collection::vec(op(n), 1..40).prop_map(move |ops| Scenario {
            users: users.clone(),
            ops,
        })
    })
}

/// One accepted message, as the model remembers it.
#[derive(Debug, Clone)]
struct Stored {
    guild: usize,
    seq: u64,
    admin_only: bool,
    message_id: String,
}

/// What the log must hold, and who may do what.
struct Model {
    users: Vec<(UserInfo, BTreeSet<usize>)>,
    log: Vec<Stored>,
    /// messageId → (owner, seq of the first message).
    claims: HashMap<String, (String, u64)>,
}

/// What the router must answer to a send.
enum Expected {
    New,
    Duplicate(u64),
    Refused(ErrorCode),
}

impl Model {
    fn new(users: &[(Role, BTreeSet<usize>)]) -> Self {
        let users = users
            .iter()
            .enumerate()
            .map(|(i, (role, guilds))| {
                (
                    UserInfo::new(format!("u{i}"), format!("U{i}"), *role),
                    guilds.clone(),
                )
            })
            .collect();
        Model {
            users,
            log: Vec::new(),
            claims: HashMap::new(),
        }
    }

    fn is_member(&self, user: usize, guild: usize) -> bool {
        self.users[user].1.contains(&guild)
    }

    /// The gateway's rule: members read their guilds, admins read any.
    fn may_read(&self, user: usize, guild: usize) -> bool {
        self.users[user].0.is_admin() || self.is_member(user, guild)
    }

    fn expect(
        &self,
        sender: &UserInfo,
        member: bool,
        admin_only: bool,
        id: Option<&str>,
    ) -> Expected {
        let privileged = matches!(sender.role, Role::Admin | Role::Bot);
        if !privileged && !member {
            return Expected::Refused(ErrorCode::ForbiddenGuild);
        }
        if admin_only && !privileged {
            return Expected::Refused(ErrorCode::AdminOnlyForbidden);
        }
        match id.and_then(|id| self.claims.get(id)) {
            Some((owner, seq)) if *owner == sender.id => Expected::Duplicate(*seq),
            Some(_) => Expected::Refused(ErrorCode::DuplicateMessageId),
            None => Expected::New,
        }
    }

    /// The seqs a reader with `visibility` must see in `guild`, oldest first.
    fn visible(&self, guild: usize, admin: bool) -> Vec<u64> {
        self.log
            .iter()
            .filter(|m| m.guild == guild && (admin || !m.admin_only))
            .map(|m| m.seq)
            .collect()
    }

    /// A seq to read from: 0, or one of the stored ones (the index picks it).
    fn position(&self, pick: Option<usize>) -> u64 {
        match pick {
            Some(i) if !self.log.is_empty() => self.log[i % self.log.len()].seq,
            _ => 0,
        }
    }
}

/// Runs one scenario against a fresh bus and router.
async fn run(scenario: Scenario) -> Result<(), TestCaseError> {
    let bus = MemoryBus::new(Default::default());
    let stop = CancellationToken::new();
    let router = tokio::spawn(router_worker::run(
        bus.clone(),
        RouterConfig::default(),
        Default::default(),
        stop.clone(),
    ));
    let mut model = Model::new(&scenario.users);
    for (n, op) in scenario.ops.into_iter().enumerate() {
        match op {
            Op::Join { user, guild } => {
                model.users[user].1.insert(guild);
            }
            Op::Leave { user, guild } => {
                model.users[user].1.remove(&guild);
            }
            Op::Send {
                sender,
                guild,
                admin_only,
                request_bot,
                id,
            } => {
                send(
                    bus.as_ref(),
                    &mut model,
                    n,
                    sender,
                    guild,
                    admin_only,
                    request_bot,
                    id,
                )
                .await?;
            }
            Op::Resume {
                reader,
                guild,
                after,
            } => resume(bus.as_ref(), &model, reader, guild, after).await?,
            Op::History {
                reader,
                guild,
                before,
                limit,
            } => history(bus.as_ref(), &model, reader, guild, before, limit).await?,
        }
    }
    stop.cancel();
    router
        .await
        .map_err(|e| TestCaseError::fail(format!("router task: {e}")))?
        .map_err(|e| TestCaseError::fail(format!("router: {e}")))?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn send(
    bus: &MemoryBus,
    model: &mut Model,
    n: usize,
    sender: Sender,
    guild: usize,
    admin_only: bool,
    request_bot: bool,
    id: Option<u8>,
) -> Result<(), TestCaseError> {
    let (info, member) = match sender {
        Sender::User(u) => (model.users[u].0.clone(), model.is_member(u, guild)),
        Sender::Bot => (UserInfo::bot(), false),
    };
    let message_id = id.map(|k| match info.role {
        Role::Bot => format!("m{k}-bot"),
        _ => format!("m{k}"),
    });
    let expected = model.expect(&info, member, admin_only, message_id.as_deref());
    let request = SendRequest {
        v: INTERNAL_VERSION,
        sender: info.clone(),
        guild_id: Some(GUILDS[guild].to_owned()),
        text: Some(format!("text {n}")),
        admin_only,
        request_bot,
        message_id: message_id.clone(),
        member_verified: member,
    };
    let outcome = bus
        .submit(request)
        .await
        .map_err(|e| TestCaseError::fail(format!("submit: {e}")))?;
    match (expected, outcome) {
        (Expected::Refused(code), Err(got)) => prop_assert_eq!(got, code),
        (Expected::Duplicate(seq), Ok(ack)) => {
            prop_assert_eq!(ack.seq, seq, "resend acks the first seq")
        }
        (Expected::New, Ok(ack)) => {
            let last = model
                .log
                .iter()
                .filter(|m| m.guild == guild)
                .map(|m| m.seq)
                .max();
            prop_assert!(
                last.is_none_or(|last| ack.seq > last),
                "seq increases in a guild"
            );
            if let Some(id) = &message_id {
                prop_assert_eq!(&ack.message_id, id);
            }
            model
                .claims
                .insert(ack.message_id.clone(), (info.id.clone(), ack.seq));
            model.log.push(Stored {
                guild,
                seq: ack.seq,
                admin_only,
                message_id: ack.message_id,
            });
        }
        (_, got) => prop_assert!(
            false,
            "send by {:?} to {} answered {:?} against the rules",
            info.role,
            GUILDS[guild],
            got
        ),
    }
    Ok(())
}

/// The safety rule on anything a reader is shown.
fn check_shown(
    model: &Model,
    reader: usize,
    guild: usize,
    entries: &[LogEntry],
) -> Result<(), TestCaseError> {
    let admin = model.users[reader].0.is_admin();
    for entry in entries {
        let m = &entry.message;
        prop_assert_eq!(
            &m.guild_id,
            GUILDS[guild],
            "a read returned another guild's message"
        );
        prop_assert!(
            admin || !m.admin_only,
            "admin-only message {} shown to a non-admin",
            m.message_id
        );
        prop_assert!(
            model.may_read(reader, guild),
            "message {} shown to a non-member",
            m.message_id
        );
        let stored = model.log.iter().find(|s| s.seq == entry.seq);
        prop_assert!(
            stored.is_some_and(|s| s.message_id == m.message_id && s.admin_only == m.admin_only)
        );
    }
    Ok(())
}

async fn resume(
    bus: &MemoryBus,
    model: &Model,
    reader: usize,
    guild: usize,
    after: Option<usize>,
) -> Result<(), TestCaseError> {
    let after = model.position(after);
    let public = bus
        .read_after(GUILDS[guild], after, READ_ALL, Visibility::Public)
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(
        public.entries.iter().all(|e| !e.message.admin_only),
        "a public read returned an admin-only message"
    );
    if !model.may_read(reader, guild) {
        return Ok(());
    }
    let admin = model.users[reader].0.is_admin();
    let replay = bus
        .read_after(GUILDS[guild], after, READ_ALL, Visibility::for_admin(admin))
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    check_shown(model, reader, guild, &replay.entries)?;
    let got: Vec<u64> = replay.entries.iter().map(|e| e.seq).collect();
    let want: Vec<u64> = model
        .visible(guild, admin)
        .into_iter()
        .filter(|s| *s > after)
        .collect();
    prop_assert_eq!(got, want, "resume of {} after {}", GUILDS[guild], after);
    prop_assert!(!replay.gap && !replay.more);
    Ok(())
}

async fn history(
    bus: &MemoryBus,
    model: &Model,
    reader: usize,
    guild: usize,
    before: Option<usize>,
    limit: usize,
) -> Result<(), TestCaseError> {
    if !model.may_read(reader, guild) {
        return Ok(());
    }
    let admin = model.users[reader].0.is_admin();
    let before = before.map(|pick| model.position(Some(pick)));
    let (page, has_more) = bus
        .read_before(GUILDS[guild], before, limit, Visibility::for_admin(admin))
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    check_shown(model, reader, guild, &page)?;
    let older: Vec<u64> = model
        .visible(guild, admin)
        .into_iter()
        .rev()
        .filter(|s| before.is_none_or(|b| *s < b))
        .collect();
    let got: Vec<u64> = page.iter().map(|e| e.seq).collect();
    prop_assert_eq!(&got[..], &older[..older.len().min(limit)], "history page");
    prop_assert_eq!(has_more, older.len() > limit, "hasMore");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_read_shows_what_the_reader_may_not_see(scenario in scenario()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        runtime.block_on(run(scenario))?;
    }
}

/// The same rule on a fixed scenario, so a regression names the case: a club member's
/// admin-only send is refused, an admin's is stored, and only the admin reads it back.
#[tokio::test]
async fn admin_only_reaches_admins_only() {
    let scenario = Scenario {
        users: vec![
            (Role::Club, BTreeSet::from([0])),
            (Role::Admin, BTreeSet::new()),
            (Role::Member, BTreeSet::from([0])),
        ],
        ops: vec![
            Op::Send {
                sender: Sender::User(0),
                guild: 0,
                admin_only: true,
                request_bot: false,
                id: None,
            },
            Op::Send {
                sender: Sender::User(1),
                guild: 0,
                admin_only: true,
                request_bot: false,
                id: Some(1),
            },
            Op::Send {
                sender: Sender::User(2),
                guild: 0,
                admin_only: false,
                request_bot: false,
                id: Some(1),
            },
            Op::Resume {
                reader: 2,
                guild: 0,
                after: None,
            },
            Op::Resume {
                reader: 1,
                guild: 0,
                after: None,
            },
            Op::History {
                reader: 2,
                guild: 0,
                before: None,
                limit: 5,
            },
        ],
    };
    run(scenario).await.expect("the rules hold");
}
