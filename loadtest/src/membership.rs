//! Who is in which guild. Every run uses its own guild and user ids (prefixed with a random
//! run nonce), so runs never see each other's messages, and the expected delivery count of a
//! message is exactly the number of members this run put in its guild.

use rand::Rng;

/// A random run nonce: 8 lowercase letters and digits.
pub fn new_nonce() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Guild membership of the receiving clients of one run.
#[derive(Debug, Clone)]
pub struct Membership {
    nonce: String,
    guild_prefix: String,
    guild_ids: Vec<String>,
    per_client: Vec<Vec<usize>>,
    members: Vec<u64>,
}

impl Membership {
    /// Client `i` joins guilds `i, i+1, …, i+per_client-1` (mod `guilds`), which keeps guild
    /// sizes within one of each other.
    pub fn new(nonce: &str, clients: usize, guilds: usize, per_client: usize) -> Self {
        let guild_prefix = format!("lt{nonce}g");
        let guild_ids = (0..guilds).map(|g| format!("{guild_prefix}{g}")).collect();
        let per_client: Vec<Vec<usize>> = (0..clients)
            .map(|i| (0..per_client).map(|j| (i + j) % guilds).collect())
            .collect();
        let mut members = vec![0u64; guilds];
        for guild in per_client.iter().flatten() {
            members[*guild] += 1;
        }
        Membership {
            nonce: nonce.to_owned(),
            guild_prefix,
            guild_ids,
            per_client,
            members,
        }
    }

    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    pub fn clients(&self) -> usize {
        self.per_client.len()
    }

    pub fn guild_count(&self) -> usize {
        self.guild_ids.len()
    }

    pub fn guild_id(&self, guild: usize) -> &str {
        &self.guild_ids[guild]
    }

    /// The index of one of this run's guild ids.
    pub fn guild_index(&self, id: &str) -> Option<usize> {
        let index: usize = id.strip_prefix(&self.guild_prefix)?.parse().ok()?;
        (index < self.guild_ids.len()).then_some(index)
    }

    /// Guild indices of receiving client `client`.
    pub fn guilds_of(&self, client: usize) -> &[usize] {
        &self.per_client[client]
    }

    /// Guild ids of receiving client `client`.
    pub fn guild_ids_of(&self, client: usize) -> Vec<String> {
        self.guilds_of(client)
            .iter()
            .map(|g| self.guild_ids[*g].clone())
            .collect()
    }

    /// How many receiving clients are in `guild`.
    pub fn members(&self, guild: usize) -> u64 {
        self.members[guild]
    }

    /// The receiving client whose guilds sender `sender` of `senders` uses: spread evenly over
    /// the clients, and moved within its stride so that sender `j` starts at guild `j mod G`
    /// (spreading alone could land every sender in the same guild, e.g. 10 senders over 1000
    /// clients in 10 guilds).
    pub fn sender_anchor(&self, sender: usize, senders: usize) -> usize {
        let clients = self.clients().max(1);
        let guilds = self.guild_count().max(1);
        let spread = sender * clients / senders.max(1);
        let anchor = spread - spread % guilds + sender % guilds;
        if anchor < clients {
            anchor
        } else {
            sender % clients
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_and_parseable() {
        let m = Membership::new("abc", 10, 4, 2);
        let total: u64 = (0..4).map(|g| m.members(g)).sum();
        assert_eq!(total, 20);
        assert!((0..4).all(|g| (4..=6).contains(&m.members(g))));
        assert_eq!(m.guild_index(m.guild_id(3)), Some(3));
        assert_eq!(m.guild_index("ltabcg9"), None);
        assert_eq!(m.guild_index("other"), None);
        assert_eq!(m.guilds_of(3), &[3, 0]);
        assert_eq!(m.sender_anchor(1, 2), 5);
    }

    #[test]
    fn senders_cover_every_guild() {
        let m = Membership::new("abc", 1000, 10, 1);
        let mut first: Vec<usize> = (0..10)
            .map(|s| m.guilds_of(m.sender_anchor(s, 10))[0])
            .collect();
        first.sort_unstable();
        assert_eq!(first, (0..10).collect::<Vec<_>>());
        let few = Membership::new("abc", 3, 10, 1);
        assert!((0..10).all(|s| few.sender_anchor(s, 10) < 3));
    }
}
