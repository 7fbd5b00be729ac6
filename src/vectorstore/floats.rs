//! Growable storage for the stored vectors, in memory the kernel may back with huge pages.
//!
//! An exact search streams every stored float once per query, so it runs at memory speed
//! only if the stream never stalls. With 4 KiB pages it stalls at each page: the hardware
//! prefetcher stops at page boundaries and every page costs a TLB walk. numpy asks Linux for
//! transparent huge pages (`MADV_HUGEPAGE`) on large arrays, which is one reason its
//! `X @ q` reads faster than a plain `Vec` does; this buffer does the same. Small stores
//! stay on the heap; from `MAPPED_MIN_BYTES` on, the floats live in an anonymous mapping
//! advised for huge pages (a hint: where the kernel has none to give, nothing changes).

use std::sync::atomic::{AtomicUsize, Ordering};

use memmap2::MmapMut;

/// From this size on the floats move to a mapping advised for huge pages (2 MiB each).
const MAPPED_MIN_BYTES: usize = 4 << 20;

/// A move [`Floats::reserve`] would make: to room for `needed` floats, from a mapping of
/// `current` (0: from the heap).
pub struct Growth {
    needed: usize,
    current: usize,
}

impl Growth {
    /// The mapping to move to, made before the lock is taken; its pages are faulted in by
    /// [`Spare::fault_in`], which any threads with time to spare call.
    pub fn make(self) -> Option<Spare> {
        let map = new_mapping(self.needed, self.current)?;
        let used = (self.needed * 4).min(map.len());
        Some(Spare {
            map,
            used,
            next_piece: AtomicUsize::new(0),
        })
    }
}

/// A mapping made ready for a coming move ([`Growth::make`]).
pub struct Spare {
    map: MmapMut,
    /// Bytes the floats will fill once moved in: the part worth faulting in ahead.
    used: usize,
    /// Start of the next piece of `used` no thread has claimed to fault in.
    next_piece: AtomicUsize,
}

/// How much of a [`Spare`] one claim faults in: one huge page.
const FAULT_PIECE: usize = 2 << 20;

impl Spare {
    /// Faults in the pages the floats will fill, a piece at a time, until none is left.
    ///
    /// Faulting in fresh memory is the slow part of a large add (on a VM whose host backs
    /// guest memory on first touch, 15 MB has been seen to take 40 ms, far more than
    /// copying into it), so it is done away from the lock, and several threads may share
    /// it: each piece is claimed by one of them. Populating only maps pages and leaves
    /// their contents alone, so the threads share the mapping by reference.
    pub fn fault_in(&self) {
        while self.fault_in_piece() {}
    }

    /// Faults in one piece of [`Self::fault_in`]'s work; `false` once none is left (for a
    /// thread that does it between other work).
    pub fn fault_in_piece(&self) -> bool {
        let start = self.next_piece.fetch_add(FAULT_PIECE, Ordering::Relaxed);
        if start >= self.used {
            return false;
        }
        let len = FAULT_PIECE.min(self.used - start);
        if !populate(&self.map, start, len) {
            // Not supported here: the pages fault in as the floats are copied.
            self.next_piece.store(self.used, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// Maps `len` bytes of `map` from `start` writable without touching them; `false` where
/// the kernel cannot (`MADV_POPULATE_WRITE` is Linux 5.14 on).
fn populate(map: &MmapMut, start: usize, len: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        map.advise_range(memmap2::Advice::PopulateWrite, start, len)
            .is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (map, start, len);
        false
    }
}

/// A mapping for `needed` floats, grown from one of `current` (doubling, at least
/// `MAPPED_MIN_BYTES`), advised for huge pages.
fn new_mapping(needed: usize, current: usize) -> Option<MmapMut> {
    let floats = needed
        .max(current.saturating_mul(2))
        .max(MAPPED_MIN_BYTES / 4);
    let map = MmapMut::map_anon(floats * 4).ok()?;
    #[cfg(target_os = "linux")]
    let _ = map.advise(memmap2::Advice::HugePage); // a hint; refusal changes nothing
    Some(map)
}

pub struct Floats {
    len: usize,
    store: Store,
}

enum Store {
    Heap(Vec<f32>),
    /// `map.len() / 4` floats of capacity, the first `len` in use.
    Mapped(MmapMut),
}

impl Default for Floats {
    fn default() -> Self {
        Floats {
            len: 0,
            store: Store::Heap(Vec::new()),
        }
    }
}

impl Floats {
    pub fn as_slice(&self) -> &[f32] {
        match &self.store {
            Store::Heap(v) => v,
            Store::Mapped(map) => &bytemuck::cast_slice(&map[..])[..self.len],
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn extend_from_slice(&mut self, values: &[f32]) {
        let needed = self.len + values.len();
        if let Some(growth) = self.growth(values.len()) {
            self.move_to(growth, None);
        }
        match &mut self.store {
            // The heap vector always holds exactly `len` floats.
            Store::Heap(v) => v.extend_from_slice(values),
            Store::Mapped(map) => {
                let floats: &mut [f32] = bytemuck::cast_slice_mut(&mut map[..]);
                floats[self.len..needed].copy_from_slice(values);
            }
        }
        self.len = needed;
    }

    /// Room for `additional` more floats (one move at most, instead of one per doubling).
    pub fn reserve(&mut self, additional: usize) {
        self.reserve_with(additional, None);
    }

    /// [`Self::reserve`], moving into `spare` (from [`Growth::make`]) if a move is due
    /// and `spare` is large enough (else as `reserve` does).
    pub fn reserve_with(&mut self, additional: usize, spare: Option<Spare>) {
        match self.growth(additional) {
            Some(growth) => self.move_to(growth, spare),
            None => {
                if let Store::Heap(v) = &mut self.store {
                    v.reserve(additional);
                }
            }
        }
    }

    /// The move room for `additional` more floats needs, if it needs one (the one place
    /// that decides it): off the heap once past [`MAPPED_MIN_BYTES`], or out of a full
    /// mapping. [`Growth::make`] makes the new mapping away from the lock that guards the
    /// floats.
    pub fn growth(&self, additional: usize) -> Option<Growth> {
        let needed = self.len + additional;
        let current = match &self.store {
            Store::Heap(_) if needed * 4 >= MAPPED_MIN_BYTES => 0,
            Store::Mapped(map) if needed > map.len() / 4 => map.len() / 4,
            _ => return None,
        };
        Some(Growth { needed, current })
    }

    pub fn truncate(&mut self, len: usize) {
        if let Store::Heap(v) = &mut self.store {
            v.truncate(len);
        }
        self.len = self.len.min(len);
    }

    /// Makes `growth`: moves the floats into `spare` when it holds the floats needed, else
    /// into a fresh mapping (doubling, so growth copies each float a bounded number of
    /// times). Without address space for it, the floats go (or stay) on the heap: correct,
    /// only slower to scan.
    fn move_to(&mut self, growth: Growth, spare: Option<Spare>) {
        let map = match spare {
            Some(spare) if spare.map.len() / 4 >= growth.needed => Some(spare.map),
            _ => new_mapping(growth.needed, growth.current),
        };
        match map {
            Some(mut map) => {
                let target: &mut [f32] = bytemuck::cast_slice_mut(&mut map[..]);
                target[..self.len].copy_from_slice(self.as_slice());
                self.store = Store::Mapped(map);
            }
            None => {
                if let Store::Mapped(_) = self.store {
                    self.store = Store::Heap(self.as_slice().to_vec());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the mapping holding `floats` (panics if they are on the heap).
    fn mapped_bytes(floats: &Floats) -> usize {
        match &floats.store {
            Store::Mapped(map) => map.len(),
            Store::Heap(_) => panic!("the floats are still on the heap"),
        }
    }

    #[test]
    fn grows_from_the_heap_into_a_mapping_keeping_every_value() {
        let mut floats = Floats::default();
        let row: Vec<f32> = (0..384).map(|i| i as f32).collect();
        // 4,000 rows of 384 floats: 6 MB, past the mapping threshold.
        for r in 0..4_000 {
            let shifted: Vec<f32> = row.iter().map(|x| x + r as f32).collect();
            floats.extend_from_slice(&shifted);
        }
        assert!(matches!(floats.store, Store::Mapped(_)));
        assert_eq!(floats.len(), 4_000 * 384);
        let all = floats.as_slice();
        assert_eq!(all[0], 0.0);
        assert_eq!(all[383], 383.0);
        assert_eq!(all[3_999 * 384 + 5], 3_999.0 + 5.0);
        floats.truncate(10 * 384);
        assert_eq!(floats.as_slice().len(), 3_840);
        floats.extend_from_slice(&[7.0; 384]);
        assert_eq!(floats.as_slice()[3_840..], [7.0; 384]);
    }

    #[test]
    fn a_spare_faulted_in_by_several_threads_at_once_is_moved_into_with_every_value() {
        let mut floats = Floats::default();
        floats.extend_from_slice(&[1.0, 2.0, 3.0]);
        // 5M floats: 20 MB, ten pieces for the threads to claim.
        let spare = floats
            .growth(5_000_000)
            .and_then(Growth::make)
            .expect("spare");
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| spare.fault_in());
            }
        });
        assert!(spare.next_piece.load(Ordering::Relaxed) >= spare.used);
        spare.fault_in(); // nothing left: returns at once
        floats.reserve_with(5_000_000, Some(spare));
        assert_eq!(mapped_bytes(&floats), 5_000_003 * 4, "moved to the spare");
        assert_eq!(floats.as_slice(), [1.0, 2.0, 3.0]);
        floats.extend_from_slice(&[9.0; 5_000_000]);
        assert_eq!(floats.as_slice()[5_000_002], 9.0);
        assert!(
            floats.growth(1).is_some(),
            "full: the next float needs a move"
        );
    }

    #[test]
    fn a_spare_made_ahead_is_moved_into_and_one_too_small_is_not() {
        let mut floats = Floats::default();
        floats.extend_from_slice(&[1.0, 2.0, 3.0]);
        assert!(
            floats.growth(10).is_none(),
            "a small store stays on the heap"
        );
        let spare = floats
            .growth(2_000_000)
            .and_then(Growth::make)
            .expect("spare");
        floats.reserve_with(2_000_000, Some(spare));
        assert_eq!(mapped_bytes(&floats), 2_000_003 * 4, "moved to the spare");
        assert_eq!(floats.as_slice(), [1.0, 2.0, 3.0]);
        floats.extend_from_slice(&[4.0; 1_999_000]);
        assert_eq!(floats.len(), 1_999_003);
        assert_eq!(floats.as_slice()[..4], [1.0, 2.0, 3.0, 4.0]);
        // A spare made for fewer rows than arrived (another writer got in first) is ignored.
        let small = floats
            .growth(2_000_000)
            .and_then(Growth::make)
            .expect("spare");
        floats.extend_from_slice(&[5.0; 2_000_000]);
        floats.reserve_with(5_000_000, Some(small));
        assert!(mapped_bytes(&floats) / 4 >= 3_999_003 + 5_000_000);
        assert_eq!(floats.as_slice()[3_999_002], 5.0);
        assert!(floats.growth(1).is_none(), "room is left");
    }
}
