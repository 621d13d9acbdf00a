//! Which ingress partition a guild's sends go to, and which live router should own each
//! partition. Pure logic: a stable hash (the same in every process and release), and
//! rendezvous hashing so that when a router joins or leaves only its share of the partitions
//! moves. The leases that make one owner at a time are in [`super::leases`].

use std::collections::BTreeSet;

use crate::protocol::validate::is_valid_guild_id;

/// Ingress partitions: `chat.ingress.0` … `chat.ingress.15`. A fixed number, the same in every
/// gateway and router (it is part of the subject layout), and the most routers that can share
/// the ingress.
pub const INGRESS_PARTITIONS: u32 = 16;

/// FNV-1a, 64 bit: small, stable across processes and platforms.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The partition of a guild; an absent or invalid guild id has one too (the router answers
/// it with the right error).
pub fn partition_of(guild_id: Option<&str>) -> u32 {
    let key = guild_id.filter(|g| is_valid_guild_id(g)).unwrap_or("");
    u32::try_from(fnv1a(key.as_bytes()) % u64::from(INGRESS_PARTITIONS)).unwrap_or(0)
}

/// The router that should own `partition` among `routers` (highest rendezvous score).
pub fn owner_of(partition: u32, routers: &[String]) -> Option<&str> {
    routers
        .iter()
        .max_by_key(|router| score(partition, router))
        .map(String::as_str)
}

/// The partitions `me` should own when `routers` (which should include `me`) are alive.
pub fn wanted(me: &str, routers: &[String]) -> BTreeSet<u32> {
    (0..INGRESS_PARTITIONS)
        .filter(|p| owner_of(*p, routers) == Some(me))
        .collect()
}

/// A router's rendezvous score for a partition. FNV-1a alone is not enough here: router ids
/// differ in their early bytes and partitions only in the last ones, and FNV-1a's last bytes
/// barely move the high bits, so one of two routers could win every partition (about one pair
/// of router ids in thirty). The 64-bit finaliser of MurmurHash3 mixes every bit into every bit.
fn score(partition: u32, router: &str) -> (u64, &str) {
    let mut key = Vec::with_capacity(router.len() + 5);
    key.extend_from_slice(router.as_bytes());
    key.push(b'/');
    key.extend_from_slice(&partition.to_le_bytes());
    (fmix64(fnv1a(&key)), router)
}

/// MurmurHash3's 64-bit finaliser.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routers(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn the_hash_is_stable() {
        // Gateways and routers of different builds must agree: these values never change.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(partition_of(Some("g1")), partition_of(Some("g1")));
        assert_eq!(partition_of(None), partition_of(Some("a.b")));
        assert!(partition_of(Some("g1")) < INGRESS_PARTITIONS);
    }

    #[test]
    fn guilds_spread_over_partitions() {
        let used: BTreeSet<u32> = (0..200)
            .map(|i| partition_of(Some(&format!("guild{i}"))))
            .collect();
        assert_eq!(used.len(), INGRESS_PARTITIONS as usize);
    }

    #[test]
    fn every_partition_has_exactly_one_owner() {
        for live in [
            routers(&["a"]),
            routers(&["a", "b"]),
            routers(&["a", "b", "c"]),
        ] {
            let mut all = BTreeSet::new();
            let mut total = 0;
            for me in &live {
                let mine = wanted(me, &live);
                total += mine.len();
                all.extend(mine);
            }
            assert_eq!(total, INGRESS_PARTITIONS as usize, "{live:?}");
            assert_eq!(all.len(), INGRESS_PARTITIONS as usize, "{live:?}");
        }
        assert!(wanted("x", &[]).is_empty());
    }

    #[test]
    fn two_routers_with_real_ids_both_get_a_share() {
        // Router ids are ULIDs made at about the same time: a common prefix, random tails.
        let mut random = 0x9e37_79b9_7f4a_7c15_u128;
        let mut id = || {
            random = random
                .wrapping_mul(0x2545_f491_4f6c_dd1d)
                .wrapping_add(1_442_695_040_888_963_407);
            ulid::Ulid::from_parts(1_764_600_000_000, random).to_string()
        };
        let mut fewest = usize::MAX;
        for _ in 0..2_000 {
            let pair = vec![id(), id()];
            let first = wanted(&pair[0], &pair).len();
            fewest = fewest.min(first.min(INGRESS_PARTITIONS as usize - first));
        }
        // The ids are fixed, so this is deterministic; with a fair score one router of a pair
        // gets nothing in about 1 pair in 32,768 (FNV-1a alone: about 1 in 30).
        assert!(fewest >= 1, "a router got no partition at all");
    }

    #[test]
    fn a_leaving_router_moves_only_its_own_partitions() {
        let three = routers(&["a", "b", "c"]);
        let two = routers(&["a", "b"]);
        for p in 0..INGRESS_PARTITIONS {
            let before = owner_of(p, &three);
            if before != Some("c") {
                assert_eq!(owner_of(p, &two), before, "partition {p}");
            }
        }
    }
}
