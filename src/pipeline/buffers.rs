//! Reading vectors handed back from the ledger writer to the processor. In a burst a commit's readings take
//! megabytes; glibc maps each block over 1 MiB on its own (see `allocator::tune`), so a fresh vector per commit
//! costs a page fault per 4 KiB written and an `munmap` when freed: about a twentieth of the writer's time. Each
//! vector comes back once committed: from the writer, or, when the live followers take the batch, from the last of
//! them to let it go (`bus::CommittedBatch`); the processor fills it again. After a burst the writer empties the pool,
//! and the memory goes back to the system with the rest.

use std::sync::{Arc, Mutex};

use crate::ledger::Evaluated;

/// Vectors kept between commits: one being filled by the processor while the writer commits another.
const KEEP: usize = 2;

#[derive(Clone, Default)]
pub(super) struct Buffers(Arc<Mutex<Vec<Vec<Evaluated>>>>);

impl Buffers {
    /// An empty vector, with the capacity of an earlier commit when one is kept.
    pub fn take(&self) -> Vec<Evaluated> {
        self.pool().pop().unwrap_or_default()
    }

    /// Keep `readings`' memory for a later commit (its readings are dropped).
    pub fn give(&self, mut readings: Vec<Evaluated>) {
        if readings.capacity() == 0 {
            return;
        }
        readings.clear();
        let mut pool = self.pool();
        if pool.len() < KEEP {
            pool.push(readings);
        }
    }

    /// Let every kept vector go (the burst is over).
    pub fn release(&self) {
        self.pool().clear();
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Vec<Vec<Evaluated>>> {
        // A panic while holding the lock leaves only vectors of no value: use them anyway.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::{Buffers, KEEP};

    #[test]
    fn a_given_vector_comes_back_empty_with_its_capacity_and_release_lets_all_go() {
        let b = Buffers::default();
        assert_eq!(b.take().capacity(), 0);
        for _ in 0..KEEP + 1 {
            b.give(Vec::with_capacity(1000));
        }
        assert_eq!(b.pool().len(), KEEP, "at most KEEP vectors are kept");
        let v = b.take();
        assert!(v.is_empty() && v.capacity() >= 1000);
        b.release();
        assert_eq!(b.take().capacity(), 0);
    }
}
