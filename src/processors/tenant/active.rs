//! The active series (or streams) of one tenant: the 64-bit hash of each label
//! set with the time it was last seen, packed into one `u64` slot of an
//! open-addressing table.
//!
//! The top 48 bits of a slot are the top 48 bits of the hash, the low 16 bits
//! the time last seen in ticks (1/64 of the expiry), so a series costs 8 bytes
//! a slot and, at the table's load of 3/8 to 3/4, 11 to 21 bytes. Two label
//! sets sharing 48 hash bits count as one series: at a million series the
//! chance that any pair does is about 0.2 %, and the cost is one series
//! counted too few. Expired entries go in a sweep that rebuilds the table at
//! the size the live ones need, so memory also shrinks when series go away.

/// A slot nobody uses: a hash whose top 48 bits are zero is stored as if its
/// lowest of them were one (see [`ActiveSet::key`]).
const EMPTY: u64 = 0;
const TICK_MASK: u64 = 0xffff;
const MIN_SLOTS: usize = 16;

/// Ticks a series stays active after it was last seen.
pub const EXPIRY_TICKS: u16 = 64;

#[derive(Debug, Default)]
pub struct ActiveSet {
    slots: Vec<u64>,
    len: usize,
}

impl ActiveSet {
    fn key(hash: u64) -> u64 {
        match hash & !TICK_MASK {
            0 => 1 << 16,
            high => high,
        }
    }

    /// Series in the set (expired ones until the next sweep).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes the table holds.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<u64>()
    }

    /// Marks `hash` seen at `tick`. A series not in the set is added only
    /// while there are fewer than `limit`; returns whether it is (now) in.
    pub fn touch(&mut self, hash: u64, tick: u16, limit: usize) -> bool {
        let key = Self::key(hash);
        if !self.slots.is_empty() {
            let i = self.find(key);
            if self.slots[i] != EMPTY {
                self.slots[i] = key | u64::from(tick);
                return true;
            }
        }
        if self.len >= limit {
            return false;
        }
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.resize((self.slots.len() * 2).max(MIN_SLOTS));
        }
        let i = self.find(key);
        self.slots[i] = key | u64::from(tick);
        self.len += 1;
        true
    }

    /// The slot holding `key`, or the empty slot where it would go.
    fn find(&self, key: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = (key >> 16) as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot == EMPTY || slot & !TICK_MASK == key {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    fn resize(&mut self, slots: usize) {
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; slots]);
        for slot in old {
            if slot != EMPTY {
                let i = self.find(slot & !TICK_MASK);
                self.slots[i] = slot;
            }
        }
    }

    /// Removes what was last seen more than [`EXPIRY_TICKS`] before `now`,
    /// and shrinks the table to what is left. Ticks wrap: the caller clears
    /// the set instead when more than half the tick range went by unswept.
    pub fn sweep(&mut self, now: u16) {
        let live = |slot: &u64| {
            *slot != EMPTY && now.wrapping_sub((*slot & TICK_MASK) as u16) <= EXPIRY_TICKS
        };
        let len = self.slots.iter().filter(|s| live(s)).count();
        let wanted = Self::slots_for(len);
        if len == self.len && wanted >= self.slots.len() {
            return;
        }
        let old = std::mem::take(&mut self.slots);
        self.len = len;
        if len == 0 {
            return;
        }
        self.slots = vec![EMPTY; wanted];
        for slot in old.into_iter().filter(live) {
            let i = self.find(slot & !TICK_MASK);
            self.slots[i] = slot;
        }
    }

    /// Slots for `len` series at a load of at most 3/8 after a rebuild, so
    /// that growth does not start again at once.
    fn slots_for(len: usize) -> usize {
        (len * 8 / 3 + 1).next_power_of_two().max(MIN_SLOTS)
    }

    pub fn clear(&mut self) {
        self.slots = Vec::new();
        self.len = 0;
    }
}
