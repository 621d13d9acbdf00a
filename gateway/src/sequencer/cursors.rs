//! A connection's cursors, one per guild, in a vector sorted by guild id: a connection has a
//! few guilds (an admin maybe hundreds, added one at a time), so lookups are a binary search
//! and the vector is sized to them — a hash map's smallest table is four slots and its
//! control bytes, ~400 bytes for the one guild most connections have.

use super::cursor::Cursor;

#[derive(Debug)]
pub(super) struct Cursors<T>(Vec<Cursor<T>>);

impl<T> Cursors<T> {
    /// The cursors of these guilds (member or not, as given), duplicates dropped.
    pub(super) fn new(mut cursors: Vec<Cursor<T>>) -> Self {
        cursors.sort_by(|a, b| a.guild.cmp(&b.guild));
        cursors.dedup_by(|a, b| a.guild == b.guild);
        cursors.shrink_to_fit();
        Cursors(cursors)
    }

    fn find(&self, guild: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|c| (*c.guild).cmp(guild))
    }

    pub(super) fn contains_key(&self, guild: &str) -> bool {
        self.find(guild).is_ok()
    }

    pub(super) fn get_mut(&mut self, guild: &str) -> Option<&mut Cursor<T>> {
        let at = self.find(guild).ok()?;
        self.0.get_mut(at)
    }

    /// Adds a cursor for a guild that has none (one that has keeps its own).
    pub(super) fn insert(&mut self, cursor: Cursor<T>) {
        if let Err(at) = self.find(&cursor.guild) {
            self.0.reserve_exact(1);
            self.0.insert(at, cursor);
        }
    }

    pub(super) fn remove(&mut self, guild: &str) -> Option<Cursor<T>> {
        let at = self.find(guild).ok()?;
        Some(self.0.remove(at))
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut Cursor<T>> {
        self.0.iter_mut()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn guilds(cursors: &mut Cursors<u64>) -> Vec<String> {
        cursors.values_mut().map(|c| c.guild.to_string()).collect()
    }

    #[test]
    fn sorted_unique_and_found_by_guild() {
        let make = |g: &str| Cursor::<u64>::new(Arc::from(g), true);
        let mut cursors = Cursors::new(vec![make("g3"), make("g1"), make("g3"), make("g2")]);
        assert_eq!(guilds(&mut cursors), ["g1", "g2", "g3"]);
        assert!(cursors.contains_key("g2") && !cursors.contains_key("g4"));
        cursors.insert(Cursor::new(Arc::from("g0"), false));
        cursors.insert(Cursor::new(Arc::from("g9"), false));
        cursors.get_mut("g1").expect("g1").fetching = true;
        // Inserting an existing guild keeps the cursor it has.
        cursors.insert(make("g1"));
        assert!(cursors.get_mut("g1").is_some_and(|c| c.fetching));
        assert_eq!(guilds(&mut cursors), ["g0", "g1", "g2", "g3", "g9"]);
        assert!(cursors.remove("g2").is_some());
        assert!(cursors.remove("g2").is_none());
        assert_eq!(guilds(&mut cursors), ["g0", "g1", "g3", "g9"]);
        assert!(cursors.get_mut("g5").is_none());
    }
}
