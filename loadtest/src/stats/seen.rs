//! Which messages one client has already received, by the run's global message number: a
//! growable bitset (one bit per message of the run, far smaller than a hash set when guilds
//! are large).

#[derive(Debug, Default, Clone)]
pub struct SeenSet {
    words: Vec<u64>,
}

impl SeenSet {
    /// Marks `number` seen; false when it already was (a duplicate).
    pub fn insert(&mut self, number: u64) -> bool {
        let word = usize::try_from(number / 64).unwrap_or(usize::MAX);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let bit = 1u64 << (number % 64);
        let fresh = self.words[word] & bit == 0;
        self.words[word] |= bit;
        fresh
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn detects_repeats() {
        let mut seen = super::SeenSet::default();
        assert!(seen.insert(3));
        assert!(seen.insert(700));
        assert!(!seen.insert(3));
        assert!(!seen.insert(700));
        assert!(seen.insert(64));
    }
}
