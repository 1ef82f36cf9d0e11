//! The compiled matcher for all rules of a bus.
//!
//! Rules are not evaluated one by one. Every field path used by any rule gets one value index
//! (hash maps for exact strings, numbers and case-folded strings; prefix/suffix maps probed by
//! the distinct lengths present; an interval tree for numeric ranges; a short scan list for the
//! rest). Each branch is registered under one *trigger*: its most selective required field
//! condition. Matching flattens the event once, probes each value's index, and only branches
//! whose trigger fired (plus those satisfiable by absence alone) are completed by looking up
//! their other conditions among the matched entries, with array consistency. A trigger also
//! names one more required entry of its branch (the *filter*), checked before the branch is
//! read; a branch made of just those two conditions is decided without being read at all. The
//! cost therefore follows the event and the rules it actually touches, not the number of rules.
//! Values are probed as the flattener reads them, into per-thread working memory that is
//! reused from event to event.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::event::{flatten, flatten_plain, EventError, PathTrie, Step};
use crate::pattern::{fold_key_into, Matcher, NumericRange, Pattern, Scalar};

type FieldId = u32;
type EntryId = u32;
type BranchId = u32;

/// Whether `event` is a JSON object [`Machine::matches_plain`] may be given: valid JSON in
/// which no object repeats a key and no key holds a `.` or an escape. `Err` when it is not a
/// valid JSON object at all.
pub fn is_plain(event: &str) -> Result<bool, EventError> {
    crate::event::check_plain_object(event)
}

/// Collects rules; `build` compiles them into a [`Machine`].
#[derive(Debug)]
pub struct MachineBuilder<R> {
    rules: Vec<(R, Pattern)>,
}

/// All rules compiled into one immutable structure (`Send + Sync`, cheap to share behind an
/// `Arc` and to swap atomically on configuration change).
#[derive(Debug)]
pub struct Machine<R> {
    rules: Vec<R>,
    branches: Vec<BranchInfo>,
    /// Every branch's conditions, branch after branch (so that checking a branch reads one
    /// stretch of memory rather than one allocation per condition).
    slots: Vec<Slot>,
    /// Every condition's entries as `field << 32 | entry` (the key of `Scratch::matched`),
    /// condition after condition.
    slot_keys: Vec<u64>,
    field_ids: HashMap<String, FieldId>,
    /// Every field path (as its field) and every proper dotted prefix of one: the paths worth
    /// descending; the flattener skips every other value unread.
    steps: FastMap<String, Step>,
    /// The same paths as a trie of keys, for plain events.
    trie: PathTrie,
    fields: Vec<FieldIndex>,
    /// The branches each entry triggers, entry after entry (`FieldIndex::triggers`): one
    /// stretch of memory rather than one allocation per entry.
    triggers: Vec<Trigger>,
    /// Branches that every event must be checked against (all conditions allow absence).
    always: Vec<Trigger>,
}

/// A branch woken by an entry, and the key of one more entry the branch needs (another
/// required condition's only matcher; `NO_FILTER` if there is none). Woken branches whose
/// second entry matched nothing are dropped by a test of the per-event summary bits or one
/// probe of the small per-event map, without reading the branch: with many rules, most woken
/// branches end there.
#[derive(Debug, Clone, Copy)]
struct Trigger {
    branch: BranchId,
    /// The branch's rule when the waking condition and the filter are all its conditions
    /// (`NO_RULE` otherwise): then, unless array elements are involved, the branch matches
    /// without being read.
    whole: u32,
    filter: u64,
}

/// No second entry to check.
const NO_FILTER: u64 = u64::MAX;

/// Not a branch decided by its trigger and filter alone.
const NO_RULE: u32 = u32::MAX;

/// A woken branch that passed its filter: the key of the entry that woke it, and whether
/// the filter's values sit in array elements.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    trigger: Trigger,
    woken_by: u64,
    nested: bool,
}

#[derive(Debug)]
struct BranchInfo {
    rule: u32,
    /// Its conditions, `Machine::slots[start..end]`, in the pattern's (sorted) field order.
    slots: (u32, u32),
}

#[derive(Debug, Clone)]
struct Slot {
    field: FieldId,
    absent: bool,
    /// The entries of this condition's matchers, `Machine::slot_keys[start..end]`.
    keys: (u32, u32),
}

/// One distinct matcher on one field.
#[derive(Debug)]
struct Entry {
    matcher: Matcher,
    /// How many branch conditions use it: the lower, the better a trigger.
    uses: u32,
    /// Verified against every value of the field (no index applies).
    scanned: bool,
}

#[derive(Debug, Default)]
struct FieldIndex {
    entries: Vec<Entry>,
    by_matcher: HashMap<String, EntryId>,
    /// Per entry, what matching needs besides its matcher, as the machine is built; then
    /// copied into the indexes ([`Hit`]).
    info: Vec<EntryInfo>,
    exact: KeyMap,
    literal: FastMap<String, Vec<Hit>>,
    numeric: FastMap<u64, Vec<Hit>>,
    prefix: AffixIndex,
    suffix: AffixIndex,
    folded: KeyMap,
    folded_prefix: AffixIndex,
    folded_suffix: AffixIndex,
    ranges: RangeIndex,
    /// Matchers with no index (anything-but, exists, IP ranges, unanchored wildcards): always
    /// verified.
    scan: Vec<Hit>,
}

/// An entry as the indexes hold it: with what a hit on it needs, so that a hit reads no
/// memory beyond the index's own (with many rules, a per-entry table is mostly out of cache,
/// and the entries themselves are large and scattered: most hits read neither).
#[derive(Debug, Clone, Copy)]
struct Hit {
    entry: EntryId,
    /// Filled in once the triggers are known (`FieldIndex::resolve`).
    info: EntryInfo,
}

/// Keys probed by every distinct key length present.
#[derive(Debug, Default)]
struct AffixIndex {
    map: KeyMap,
    lengths: Vec<usize>,
}

/// What matching needs of an entry besides its matcher.
#[derive(Debug, Clone, Copy, Default)]
struct EntryInfo {
    /// The branches for which it is (part of) the trigger condition, as a range of
    /// `Machine::triggers`.
    triggers: (u32, u32),
    /// Finding it in its index already proves the match (an exact key, a prefix or suffix
    /// that is the whole pattern, a numeric range), so it is not verified again.
    implied: bool,
}

/// Entry lists by byte-string key. Keys of up to [`SHORT_KEY`] bytes (most values rules
/// name) are packed into an integer with their length, so that a lookup reads and compares
/// no key on the heap.
#[derive(Debug, Default)]
struct KeyMap {
    short: FastMap<u128, Ids>,
    long: FastMap<Box<[u8]>, Ids>,
}

/// The entries of one key: mostly one, kept in the map's slot rather than behind a pointer.
#[derive(Debug)]
enum Ids {
    One([Hit; 1]),
    Many(Vec<Hit>),
}

/// The longest key [`KeyMap`] packs: 15 bytes and one of length.
const SHORT_KEY: usize = 15;

/// Numeric ranges sorted by lower bound, with a max-upper-bound tree for pruning. A range
/// is checked here, so finding it proves the match.
///
/// The ranges that can hold a value are among those starting at or below it; a probe looks at
/// the closest few of those first, and stops as soon as none further down reaches the value
/// (narrow ranges, the common case, end there); the tree is searched only past that. With many
/// ranges the index is mostly out of cache, and a binary search is a chain of dependent
/// loads, so a probe is laid out to touch few cache lines: a guide table, indexed by where the
/// value falls between the lowest and highest lower bound, gives the few ranges to search,
/// and the ranges are kept with all that checking them takes.
#[derive(Debug, Default)]
struct RangeIndex {
    /// The ranges and their entries as added (moved to `near` by `finish`).
    items: Vec<(NumericRange, Hit)>,
    /// The ranges, by lower bound.
    near: Vec<NearRange>,
    /// Where lower bounds are: `guide[k]` of them fall in buckets below `k`
    /// ([`RangeIndex::bucket`]); one more entry than there are buckets.
    guide: Vec<u32>,
    /// The bucket of a value is `(value - origin) * scale`, rounded down and clamped.
    origin: f64,
    scale: f64,
    /// Upper bounds, ranges in the leaves (from the middle), maxima above.
    tree: Vec<f64>,
}

/// A range as a probe checks it: bounds (infinite if none) with whether they are open, and
/// the highest upper bound of it and all ranges before it.
#[derive(Debug, Clone, Copy)]
struct NearRange {
    low: f64,
    high: f64,
    reach: f64,
    entry: Hit,
    low_open: bool,
    high_open: bool,
}

/// How many of the closest ranges a probe checks one by one before searching the tree.
const NEAR_RANGES: usize = 8;

/// A map with a cheap unkeyed hash (FxHash's), for the per-event maps, the path lookup and
/// the value indexes. Safe against hash flooding: the event only looks keys up in the path
/// maps and value indexes, which are fixed when the machine is built from the bus's own rules,
/// and the per-event maps are keyed by field and entry ids.
type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[derive(Default)]
struct FxHasher(u64);

/// The end of a list of hits.
const NO_HIT: u32 = u32::MAX;

/// One event's working memory. Kept per thread and cleared, not freed, between events, so
/// that matching allocates nothing once warm (beyond the answer itself).
#[derive(Debug, Default)]
struct Scratch {
    /// Per value read: its field and the range of its array memberships in `members`.
    leaves: Vec<LeafInfo>,
    members: Vec<(u32, u32)>,
    /// The entries some value matched, keyed by `field << 32 | entry`.
    matched: Matched,
    /// A 256-bit summary of the keys of `matched` (one bit each, [`seen_bit`]): a filter whose
    /// bit is clear matched nothing, which drops most woken branches without a map probe.
    seen: [u64; 4],
    /// The lists of `Hits`: a value and the next hit of the same entry.
    hits: Vec<(u32, u32)>,
    /// The keys of the entries some value matched, in the order first matched, with their
    /// triggers (a range of `Machine::triggers`): those are read once every value is known,
    /// so that branches whose filter matched nothing are dropped before being sorted.
    woken: Vec<(u64, (u32, u32))>,
    /// Woken branches that passed their filter (and those needing no value).
    candidates: Vec<Candidate>,
    /// The rules found.
    rules: Vec<u32>,
    /// `(field, value)` for every value, sorted, once an absence check needs it this event.
    by_field: Vec<(FieldId, u32)>,
    by_field_ready: bool,
    /// The array elements chosen so far while combining values (`search`).
    pinned: Vec<(u32, u32)>,
    /// The flattener's stack of array memberships.
    nesting: Vec<(u32, u32)>,
    /// A case-folded value.
    folded: String,
}

#[derive(Debug, Clone, Copy)]
struct LeafInfo {
    field: FieldId,
    members: (u32, u32),
}

/// The values one entry matched: the head of their list in `Scratch::hits`, and whether any
/// of them sits in an array element (which makes combining values need care).
#[derive(Debug, Clone, Copy)]
struct Hits {
    first: u32,
    nested: bool,
}

/// The entries an event matched, by key: a table with open addressing (linear probing, at
/// most half full). Slots are stamped with the event they were written in, so that clearing
/// it between events is one increment, and a lookup is one multiplication and mostly one
/// comparison (these are the matcher's most frequent operations).
#[derive(Debug, Default)]
struct Matched {
    /// `(event stamp, key, hits)`; a slot with another stamp is free.
    slots: Vec<(u32, u64, Hits)>,
    /// The current event's stamp (not 0, the stamp of fresh slots, once there are slots).
    stamp: u32,
    len: usize,
}

/// Above this many values or hits, an event's working memory is freed after it.
const SCRATCH_KEEP: usize = 1 << 16;

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// Trigger cost of matchers that accept most values.
const UNSELECTIVE: u64 = 1 << 40;

// === impl MachineBuilder ===

impl<R> Default for MachineBuilder<R> {
    fn default() -> Self {
        MachineBuilder { rules: Vec::new() }
    }
}

impl<R> MachineBuilder<R> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule. Adding the same id twice makes it match if either pattern matches.
    pub fn add_rule(&mut self, id: R, pattern: &Pattern) -> &mut Self {
        self.rules.push((id, pattern.clone()));
        self
    }

    pub fn build(self) -> Machine<R> {
        let mut m = Machine {
            rules: Vec::with_capacity(self.rules.len()),
            branches: Vec::new(),
            slots: Vec::new(),
            slot_keys: Vec::new(),
            field_ids: HashMap::new(),
            steps: FastMap::default(),
            trie: PathTrie::new([]),
            fields: Vec::new(),
            triggers: Vec::new(),
            always: Vec::new(),
        };
        for (id, pattern) in self.rules {
            let rule = m.rules.len() as u32;
            m.rules.push(id);
            for branch in pattern.branches {
                let first_slot = m.slots.len() as u32;
                for cond in branch.fields {
                    let field = m.field_id(&cond.path);
                    let index = &mut m.fields[field as usize];
                    let first_key = m.slot_keys.len() as u32;
                    for mt in cond.matchers {
                        let e = index.add(mt);
                        m.slot_keys.push(entry_key(field, e));
                    }
                    m.slots.push(Slot {
                        field,
                        absent: cond.absent,
                        keys: (first_key, m.slot_keys.len() as u32),
                    });
                }
                m.branches.push(BranchInfo {
                    rule,
                    slots: (first_slot, m.slots.len() as u32),
                });
            }
        }
        for f in &mut m.fields {
            f.finish();
        }
        m.trie = PathTrie::new(m.steps.iter().map(|(p, s)| (p.as_str(), *s)));
        m.assign_triggers();
        for f in &mut m.fields {
            f.resolve();
        }
        m
    }
}

// === impl Machine ===

impl<R> Machine<R> {
    /// The rules whose patterns match `event` (raw JSON text), in the order they were added.
    pub fn matches(&self, event: &str) -> Result<Vec<&R>, EventError> {
        with_scratch(|scratch| {
            scratch.clear();
            let mut sink = |field, value: Scalar<'_>, membership: &[(u32, u32)]| {
                self.add_leaf(scratch, field, &value, membership)
            };
            let step = |p: &str| self.steps.get(p).copied().unwrap_or(Step::Skip);
            flatten(event, step, &mut sink)?;
            Ok(self.finish(scratch))
        })
    }

    /// [`Machine::matches`] for an event that [`is_plain`] accepted: the same rules, found
    /// without checking the syntax of the parts no rule reads and without reading an object
    /// past the last key the rules use (what the service does after `PutEvents` has checked
    /// the event once). Given any other text the answer is unspecified (but memory-safe).
    pub fn matches_plain(&self, event: &str) -> Result<Vec<&R>, EventError> {
        with_scratch(|scratch| {
            scratch.clear();
            let mut nesting = std::mem::take(&mut scratch.nesting);
            let mut sink = |field, value: Scalar<'_>, membership: &[(u32, u32)]| {
                self.add_leaf(scratch, field, &value, membership)
            };
            let read = flatten_plain(event, &self.trie, &mut nesting, &mut sink);
            scratch.nesting = nesting;
            read?;
            Ok(self.finish(scratch))
        })
    }

    /// Records one value of the event and the entries it matches; an entry's first hit wakes
    /// the branches it triggers.
    fn add_leaf(&self, s: &mut Scratch, field: FieldId, value: &Scalar, membership: &[(u32, u32)]) {
        let leaf = s.leaves.len() as u32;
        let start = s.members.len() as u32;
        s.members.extend_from_slice(membership);
        s.leaves.push(LeafInfo {
            field,
            members: (start, s.members.len() as u32),
        });
        let nested = !membership.is_empty();
        let Scratch {
            matched,
            seen,
            hits,
            woken,
            folded,
            ..
        } = s;
        self.fields[field as usize].probe(value, folded, |id, triggers| {
            let next = hits.len() as u32;
            let key = entry_key(field, id);
            let fresh = Hits {
                first: next,
                nested,
            };
            match matched.insert(key, fresh) {
                Some(h) => {
                    hits.push((leaf, h.first));
                    h.first = next;
                    h.nested |= nested;
                }
                None => {
                    hits.push((leaf, NO_HIT));
                    let (word, bit) = seen_bit(key);
                    seen[word] |= bit;
                    woken.push((key, triggers));
                }
            }
        });
    }

    /// Completes the woken branches once every value has been recorded.
    fn finish(&self, s: &mut Scratch) -> Vec<&R> {
        let mut candidates = std::mem::take(&mut s.candidates);
        for &(woken_by, (start, end)) in &s.woken {
            for &trigger in &self.triggers[start as usize..end as usize] {
                let nested = if trigger.filter == NO_FILTER {
                    false
                } else {
                    let (word, bit) = seen_bit(trigger.filter);
                    if s.seen[word] & bit == 0 {
                        continue;
                    }
                    match s.matched.get(&trigger.filter) {
                        Some(h) => h.nested,
                        None => continue,
                    }
                };
                candidates.push(Candidate {
                    trigger,
                    woken_by,
                    nested,
                });
            }
        }
        candidates.extend(self.always.iter().map(|&trigger| Candidate {
            trigger,
            woken_by: NO_FILTER,
            nested: false,
        }));
        candidates.sort_unstable_by_key(|c| c.trigger.branch);
        candidates.dedup_by_key(|c| c.trigger.branch);
        // Never sized by the rule count: the per-event cost must not grow with it.
        let mut matched = std::mem::take(&mut s.rules);
        for &Candidate {
            trigger,
            woken_by,
            mut nested,
        } in &candidates
        {
            if trigger.whole != NO_RULE {
                nested |= s.matched.get(&woken_by).is_none_or(|h| h.nested);
                if !nested {
                    if matched.last() != Some(&trigger.whole) {
                        matched.push(trigger.whole);
                    }
                    continue;
                }
            }
            let branch = &self.branches[trigger.branch as usize];
            // A rule's branches have consecutive ids, so candidates (sorted) visit them together.
            if matched.last() == Some(&branch.rule) {
                continue;
            }
            let slots = &self.slots[branch.slots.0 as usize..branch.slots.1 as usize];
            if branch_matches(slots, &self.slot_keys, s) {
                matched.push(branch.rule);
            }
        }
        matched.sort_unstable();
        let rules = matched.iter().map(|&r| &self.rules[r as usize]).collect();
        s.candidates = candidates;
        s.rules = matched;
        rules
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn field_id(&mut self, path: &str) -> FieldId {
        if let Some(&id) = self.field_ids.get(path) {
            return id;
        }
        let id = self.fields.len() as FieldId;
        self.fields.push(FieldIndex::default());
        self.field_ids.insert(path.to_owned(), id);
        self.steps.insert(path.to_owned(), Step::Field(id));
        for (i, _) in path.match_indices('.') {
            self.steps
                .entry(path[..i].to_owned())
                .or_insert(Step::Descend);
        }
        id
    }

    /// Registers each branch under its most selective required condition, or in `always`
    /// when absence alone can satisfy every condition.
    fn assign_triggers(&mut self) {
        // `(entry key, trigger)`, laid out by entry at the end.
        let mut assigned: Vec<(u64, Trigger)> = Vec::new();
        for (bid, branch) in self.branches.iter().enumerate() {
            let branch_id = bid as BranchId;
            let slots = &self.slots[branch.slots.0 as usize..branch.slots.1 as usize];
            let cost = |s: &Slot| {
                let index = &self.fields[s.field as usize];
                s.keys(&self.slot_keys)
                    .iter()
                    .map(|&k| index.trigger_cost(k as EntryId))
                    .sum::<u64>()
            };
            let best = slots
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.absent)
                .min_by_key(|(_, s)| cost(s));
            let Some((best_at, slot)) = best else {
                self.always.push(Trigger {
                    branch: branch_id,
                    whole: NO_RULE,
                    filter: NO_FILTER,
                });
                continue;
            };
            // The filter: the most selective other required condition with a single matcher.
            let filter = slots
                .iter()
                .enumerate()
                .filter(|&(i, s)| i != best_at && !s.absent && s.keys.1 - s.keys.0 == 1)
                .min_by_key(|(_, s)| cost(s));
            let covered = 1 + usize::from(filter.is_some());
            let whole = if slots.len() == covered {
                branch.rule
            } else {
                NO_RULE
            };
            let filter = filter.map_or(NO_FILTER, |(_, s)| s.keys(&self.slot_keys)[0]);
            for &k in slot.keys(&self.slot_keys) {
                let trigger = Trigger {
                    branch: branch_id,
                    whole,
                    filter,
                };
                assigned.push((k, trigger));
            }
        }
        assigned.sort_by_key(|&(k, _)| k);
        for group in assigned.chunk_by(|a, b| a.0 == b.0) {
            let k = group[0].0;
            let start = self.triggers.len() as u32;
            self.triggers.extend(group.iter().map(|&(_, t)| t));
            let info = &mut self.fields[(k >> 32) as usize].info[k as EntryId as usize];
            info.triggers = (start, self.triggers.len() as u32);
        }
    }
}

/// Runs `f` with this thread's working memory (or fresh memory, were it in use).
fn with_scratch<T>(f: impl FnOnce(&mut Scratch) -> T) -> T {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            let out = f(&mut scratch);
            scratch.trim();
            out
        }
        Err(_) => f(&mut Scratch::default()),
    })
}

/// Whether the matched entries can be combined into a match of `branch`: one value (or, where
/// allowed, absence) per condition, never taking two values from different elements of the
/// same array.
fn branch_matches(slots: &[Slot], keys: &[u64], s: &mut Scratch) -> bool {
    // Fast path: when every condition is required and no value it matched sits in an array
    // element, any choice of values is consistent.
    let mut simple = true;
    for slot in slots {
        let mut hit = false;
        for k in slot.keys(keys) {
            if let Some(h) = s.matched.get(k) {
                hit = true;
                simple &= !h.nested;
            }
        }
        if !hit && !slot.absent {
            return false;
        }
        simple &= !slot.absent;
    }
    if simple {
        return true;
    }
    if !s.by_field_ready && slots.iter().any(|slot| slot.absent) {
        s.by_field.clear();
        s.by_field.extend(
            s.leaves
                .iter()
                .enumerate()
                .map(|(i, l)| (l.field, i as u32)),
        );
        s.by_field.sort_unstable();
        s.by_field_ready = true;
    }
    let mut pinned = std::mem::take(&mut s.pinned);
    pinned.clear();
    let found = search(slots, keys, s, &mut pinned);
    s.pinned = pinned;
    found
}

/// Whether the conditions from `slot` on can be met by values consistent with the array
/// elements `pinned` so far.
fn search(slots: &[Slot], keys: &[u64], s: &Scratch, pinned: &mut Vec<(u32, u32)>) -> bool {
    let Some((info, rest)) = slots.split_first() else {
        return true;
    };
    for k in info.keys(keys) {
        let Some(h) = s.matched.get(k) else {
            continue;
        };
        let mut at = h.first;
        while at != NO_HIT {
            let (leaf, next) = s.hits[at as usize];
            at = next;
            let before = pinned.len();
            if pin(pinned, s.membership(leaf)) && search(rest, keys, s, pinned) {
                return true;
            }
            pinned.truncate(before);
        }
    }
    if info.absent {
        // Absent unless some value at this path sits in the array elements chosen so far.
        let from = s.by_field.partition_point(|&(f, _)| f < info.field);
        let present = s.by_field[from..]
            .iter()
            .take_while(|&&(f, _)| f == info.field)
            .any(|&(_, l)| consistent(pinned, s.membership(l)));
        if !present {
            return search(rest, keys, s, pinned);
        }
    }
    false
}

/// Whether a value with array memberships `field` sits in the elements chosen so far (or in
/// arrays not yet pinned).
fn consistent(so_far: &[(u32, u32)], field: &[(u32, u32)]) -> bool {
    field.iter().all(|&(array, index)| {
        so_far
            .iter()
            .find(|(a, _)| *a == array)
            .is_none_or(|&(_, i)| i == index)
    })
}

/// Adds the memberships of `field` to `pinned`, or gives `false` (leaving `pinned` partly
/// extended) if it sits in another element of an array already pinned.
fn pin(pinned: &mut Vec<(u32, u32)>, field: &[(u32, u32)]) -> bool {
    for &(array, index) in field {
        match pinned.iter().find(|(a, _)| *a == array) {
            Some(&(_, i)) if i != index => return false,
            Some(_) => {}
            None => pinned.push((array, index)),
        }
    }
    true
}

/// The word and bit of `key` in `Scratch::seen`.
#[inline]
fn seen_bit(key: u64) -> (usize, u64) {
    let h = key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56;
    ((h >> 6) as usize, 1 << (h & 63))
}

/// The key of entry `entry` of field `field` in `Scratch::matched`.
fn entry_key(field: FieldId, entry: EntryId) -> u64 {
    (field as u64) << 32 | entry as u64
}

// === impl Slot ===

impl Slot {
    /// The keys of this condition's entries, given `Machine::slot_keys`.
    fn keys<'k>(&self, keys: &'k [u64]) -> &'k [u64] {
        &keys[self.keys.0 as usize..self.keys.1 as usize]
    }
}

// === impl Matched ===

impl Matched {
    /// Where `key` is, or the free slot ending its probe sequence.
    #[inline]
    fn slot(&self, key: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & mask;
        while self.slots[i].0 == self.stamp && self.slots[i].1 != key {
            i = (i + 1) & mask;
        }
        i
    }

    #[inline]
    fn get(&self, key: &u64) -> Option<&Hits> {
        if self.len == 0 {
            return None;
        }
        let (stamp, _, hits) = &self.slots[self.slot(*key)];
        (*stamp == self.stamp).then_some(hits)
    }

    /// The hits of `key` if it is there; otherwise inserts `fresh` and gives `None`.
    #[inline]
    fn insert(&mut self, key: u64, fresh: Hits) -> Option<&mut Hits> {
        if 2 * (self.len + 1) > self.slots.len() {
            self.grow();
        }
        let i = self.slot(key);
        let slot = &mut self.slots[i];
        if slot.0 == self.stamp {
            return Some(&mut slot.2);
        }
        *slot = (self.stamp, key, fresh);
        self.len += 1;
        None
    }

    /// Doubles the table (at least 64 slots), keeping this event's entries.
    fn grow(&mut self) {
        let fresh = (
            0,
            0,
            Hits {
                first: NO_HIT,
                nested: false,
            },
        );
        let size = (2 * self.slots.len()).max(64);
        let old = std::mem::replace(&mut self.slots, vec![fresh; size]);
        let stamp = std::mem::replace(&mut self.stamp, 1);
        self.len = 0;
        for (s, key, hits) in old {
            if s == stamp {
                self.insert(key, hits);
            }
        }
    }

    /// Empties the table for the next event.
    fn clear(&mut self) {
        self.len = 0;
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            // Every 2^32 events: stamps would repeat.
            self.slots.clear();
        }
    }
}

// === impl Scratch ===

impl Scratch {
    fn clear(&mut self) {
        self.leaves.clear();
        self.members.clear();
        self.matched.clear();
        self.seen = [0; 4];
        self.hits.clear();
        self.woken.clear();
        self.candidates.clear();
        self.rules.clear();
        self.by_field.clear();
        self.by_field_ready = false;
    }

    /// Frees what an unusually big event made this memory hold.
    fn trim(&mut self) {
        if self
            .leaves
            .len()
            .max(self.hits.len())
            .max(self.members.len())
            > SCRATCH_KEEP
        {
            *self = Scratch::default();
        }
    }

    /// The array memberships of value `leaf`.
    fn membership(&self, leaf: u32) -> &[(u32, u32)] {
        let (start, end) = self.leaves[leaf as usize].members;
        &self.members[start as usize..end as usize]
    }
}

// === impl FxHasher ===

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap_or_default()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// The high bits of the last product: its low bits depend only on the low bits of the
    /// words hashed (the first bytes of a key), and the map picks buckets by the low bits.
    #[inline]
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

// === impl FieldIndex ===

impl FieldIndex {
    /// Adds (or finds) the entry for `matcher` and counts one more use of it.
    fn add(&mut self, matcher: Matcher) -> EntryId {
        let key = format!("{matcher:?}");
        if let Some(&id) = self.by_matcher.get(&key) {
            self.entries[id as usize].uses += 1;
            return id;
        }
        let id = self.entries.len() as EntryId;
        let hit = Hit {
            entry: id,
            info: EntryInfo::default(),
        };
        match &matcher {
            Matcher::Exact(s) => self.exact.add(s.as_bytes(), hit),
            Matcher::Literal(s) => self.literal.entry(s.clone()).or_default().push(hit),
            Matcher::NumericEquals(n) => self.numeric.entry(n.to_bits()).or_default().push(hit),
            Matcher::Prefix(p) => self.prefix.add(p.as_bytes(), hit),
            Matcher::Suffix(s) => self.suffix.add(s.as_bytes(), hit),
            Matcher::EqualsIgnoreCase(f) => match f.key() {
                Some(k) => self.folded.add(k.as_bytes(), hit),
                None => self.scan.push(hit),
            },
            Matcher::PrefixIgnoreCase(f) => match f.key() {
                Some(k) => self.folded_prefix.add(k.as_bytes(), hit),
                None => self.scan.push(hit),
            },
            Matcher::SuffixIgnoreCase(f) => match f.key() {
                Some(k) => self.folded_suffix.add(k.as_bytes(), hit),
                None => self.scan.push(hit),
            },
            Matcher::Wildcard(g) => {
                if let Some(lit) = g.literal() {
                    self.exact.add(lit, hit);
                } else if let Some(p) = g.literal_prefix().filter(|p| !p.is_empty()) {
                    self.prefix.add(p, hit);
                } else if let Some(s) = g.literal_suffix().filter(|s| !s.is_empty()) {
                    self.suffix.add(s, hit);
                } else {
                    self.scan.push(hit);
                }
            }
            Matcher::Range(r) => self.ranges.items.push((r.clone(), hit)),
            Matcher::Ip(..) | Matcher::Exists | Matcher::AnythingBut(_) => self.scan.push(hit),
        }
        self.by_matcher.insert(key, id);
        let scanned = self.scan.last().is_some_and(|h| h.entry == id);
        let implied = matches!(
            matcher,
            Matcher::Exact(_)
                | Matcher::Literal(_)
                | Matcher::NumericEquals(_)
                | Matcher::Prefix(_)
                | Matcher::Suffix(_)
                | Matcher::Range(_)
        );
        self.info.push(EntryInfo {
            triggers: (0, 0),
            implied,
        });
        self.entries.push(Entry {
            matcher,
            uses: 1,
            scanned,
        });
        id
    }

    /// How bad `entry` is as a trigger: roughly how many branches it would wake up.
    fn trigger_cost(&self, entry: EntryId) -> u64 {
        let e = &self.entries[entry as usize];
        match e.matcher {
            Matcher::Exists | Matcher::AnythingBut(_) => UNSELECTIVE,
            _ if e.scanned => UNSELECTIVE / 2 + e.uses as u64,
            _ => e.uses as u64,
        }
    }

    fn finish(&mut self) {
        self.by_matcher = HashMap::new();
        self.prefix.finish();
        self.suffix.finish();
        self.folded_prefix.finish();
        self.folded_suffix.finish();
        self.ranges.finish();
    }

    /// Copies each entry's [`EntryInfo`] into the indexes, once the triggers are known.
    fn resolve(&mut self) {
        let info = &self.info;
        let hits = (self.exact.hits_mut())
            .chain(self.literal.values_mut().flatten())
            .chain(self.numeric.values_mut().flatten())
            .chain(self.prefix.map.hits_mut())
            .chain(self.suffix.map.hits_mut())
            .chain(self.folded.hits_mut())
            .chain(self.folded_prefix.map.hits_mut())
            .chain(self.folded_suffix.map.hits_mut())
            .chain(self.ranges.near.iter_mut().map(|r| &mut r.entry))
            .chain(&mut self.scan);
        for hit in hits {
            hit.info = info[hit.entry as usize];
        }
    }

    /// Calls `hit` for every entry whose matcher accepts `value`, with its triggers.
    /// `folded` is working space.
    fn probe(&self, value: &Scalar, folded: &mut String, mut hit: impl FnMut(EntryId, (u32, u32))) {
        let mut check = |hits: &[Hit]| {
            for h in hits {
                if h.info.implied || self.entries[h.entry as usize].matcher.matches(value) {
                    hit(h.entry, h.info.triggers);
                }
            }
        };
        match value {
            Scalar::Str(s) => {
                if let Some(ids) = self.exact.get(s.as_bytes()) {
                    check(ids);
                }
                self.prefix.probe(s.as_bytes(), true, &mut check);
                self.suffix.probe(s.as_bytes(), false, &mut check);
                if !self.folded.is_empty()
                    || !self.folded_prefix.lengths.is_empty()
                    || !self.folded_suffix.lengths.is_empty()
                {
                    folded.clear();
                    fold_key_into(s, folded);
                    let k = folded.as_str();
                    if let Some(ids) = self.folded.get(k.as_bytes()) {
                        check(ids);
                    }
                    self.folded_prefix.probe(k.as_bytes(), true, &mut check);
                    self.folded_suffix.probe(k.as_bytes(), false, &mut check);
                }
            }
            Scalar::Num(_, Some(n)) => {
                if let Some(ids) = self.numeric.get(&n.to_bits()) {
                    check(ids);
                }
                self.ranges.probe(*n, &mut check);
            }
            Scalar::Num(t, None) => {
                if let Some(ids) = self.literal.get(*t) {
                    check(ids);
                }
            }
            Scalar::True | Scalar::False | Scalar::Null => {
                let t = match value {
                    Scalar::True => "true",
                    Scalar::False => "false",
                    _ => "null",
                };
                if let Some(ids) = self.literal.get(t) {
                    check(ids);
                }
            }
        }
        check(&self.scan);
    }
}

// === impl AffixIndex ===

impl AffixIndex {
    fn add(&mut self, key: &[u8], hit: Hit) {
        self.map.add(key, hit);
        if !self.lengths.contains(&key.len()) {
            self.lengths.push(key.len());
        }
    }

    fn finish(&mut self) {
        self.lengths.sort_unstable();
    }

    fn probe(&self, value: &[u8], prefix: bool, check: &mut impl FnMut(&[Hit])) {
        for &len in &self.lengths {
            if len > value.len() {
                break;
            }
            let key = if prefix {
                &value[..len]
            } else {
                &value[value.len() - len..]
            };
            if let Some(ids) = self.map.get(key) {
                check(ids);
            }
        }
    }
}

// === impl KeyMap ===

impl KeyMap {
    fn add(&mut self, key: &[u8], hit: Hit) {
        let none = || Ids::Many(Vec::new());
        let ids = match pack(key) {
            Some(k) => self.short.entry(k).or_insert_with(none),
            None => self.long.entry(key.into()).or_insert_with(none),
        };
        *ids = match std::mem::replace(ids, none()) {
            Ids::Many(many) if many.is_empty() => Ids::One([hit]),
            Ids::One([first]) => Ids::Many(vec![first, hit]),
            Ids::Many(mut many) => {
                many.push(hit);
                Ids::Many(many)
            }
        };
    }

    #[inline]
    fn get(&self, key: &[u8]) -> Option<&[Hit]> {
        let ids = match pack(key) {
            Some(k) => self.short.get(&k),
            None => self.long.get(key),
        }?;
        Some(match ids {
            Ids::One(one) => one,
            Ids::Many(many) => many,
        })
    }

    fn hits_mut(&mut self) -> impl Iterator<Item = &mut Hit> {
        let lists = self.short.values_mut().chain(self.long.values_mut());
        lists.flat_map(|ids| match ids {
            Ids::One(one) => one.as_mut_slice(),
            Ids::Many(many) => many.as_mut_slice(),
        })
    }

    fn is_empty(&self) -> bool {
        self.short.is_empty() && self.long.is_empty()
    }
}

/// `key` and its length in one integer, if it is at most [`SHORT_KEY`] bytes long: the key's
/// bytes from the lowest, the length in the highest byte.
#[inline]
fn pack(key: &[u8]) -> Option<u128> {
    let len = key.len();
    if len > SHORT_KEY {
        return None;
    }
    // Read with a few loads rather than copied into a buffer, which compiles to a call and a
    // stall on reading back the bytes it stored.
    let (low, high) = key.split_at(len.min(8));
    Some(u128::from(read_le(low)) | u128::from(read_le(high)) << 64 | (len as u128) << 120)
}

/// `bytes` (at most 8) as a little-endian integer, from overlapping loads.
#[inline]
fn read_le(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    if n >= 4 {
        let word = |at: usize| {
            let four: [u8; 4] = bytes[at..at + 4].try_into().unwrap_or_default();
            u64::from(u32::from_le_bytes(four))
        };
        word(0) | word(n - 4) << ((n - 4) * 8)
    } else if n > 0 {
        let byte = |at: usize| u64::from(bytes[at]) << (at * 8);
        byte(0) | byte(n / 2) | byte(n - 1)
    } else {
        0
    }
}

// === impl RangeIndex ===

impl RangeIndex {
    fn finish(&mut self) {
        let low = |r: &NumericRange| r.low.map_or(f64::NEG_INFINITY, |(v, _)| v);
        let mut items = std::mem::take(&mut self.items);
        items.sort_by(|a, b| {
            low(&a.0)
                .partial_cmp(&low(&b.0))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut reach = f64::NEG_INFINITY;
        self.near = items
            .iter()
            .map(|(r, entry)| {
                let high = r.high.map_or(f64::INFINITY, |(v, _)| v);
                reach = reach.max(high);
                NearRange {
                    low: low(r),
                    high,
                    reach,
                    entry: *entry,
                    low_open: r.low.is_some_and(|(_, open)| open),
                    high_open: r.high.is_some_and(|(_, open)| open),
                }
            })
            .collect();
        // One bucket per range, spread evenly between the finite lower bounds.
        let mut finite = self.near.iter().map(|r| r.low).filter(|l| l.is_finite());
        let first = finite.next().unwrap_or(0.0);
        let last = finite.next_back().unwrap_or(first);
        let buckets = self.near.len().max(1);
        self.origin = first;
        self.scale = if last > first {
            buckets as f64 / (last - first)
        } else {
            0.0
        };
        self.guide = vec![0; buckets + 1];
        for i in 0..self.near.len() {
            let k = self.bucket(self.near[i].low);
            self.guide[k + 1] += 1;
        }
        for k in 1..self.guide.len() {
            self.guide[k] += self.guide[k - 1];
        }
        let n = self.near.len();
        self.tree = vec![f64::NEG_INFINITY; 2 * n.next_power_of_two().max(1)];
        let base = self.tree.len() / 2;
        for (i, r) in self.near.iter().enumerate() {
            self.tree[base + i] = r.high;
        }
        for i in (1..base).rev() {
            self.tree[i] = self.tree[2 * i].max(self.tree[2 * i + 1]);
        }
    }

    /// The guide's bucket for `x` (not NaN). It never decreases as `x` grows (each step of
    /// the computation is monotonic, rounding included), so bounds in lower buckets than
    /// `x`'s are below `x`, and those in higher buckets above it.
    #[inline]
    fn bucket(&self, x: f64) -> usize {
        // `as` saturates: -inf and other values below the origin go to bucket 0.
        (((x - self.origin) * self.scale) as usize).min(self.guide.len() - 2)
    }

    fn probe(&self, v: f64, check: &mut impl FnMut(&[Hit])) {
        if self.near.is_empty() {
            return;
        }
        // The ranges starting at or below `v` are `near[..end]`: those of the buckets below
        // `v`'s, and part of `v`'s.
        let k = self.bucket(v);
        let (start, stop) = (self.guide[k] as usize, self.guide[k + 1] as usize);
        let mut end = start + self.near[start..stop].partition_point(|r| r.low <= v);
        for _ in 0..NEAR_RANGES {
            if end == 0 || self.near[end - 1].reach < v {
                return;
            }
            end -= 1;
            self.check_item(end, v, check);
        }
        self.visit(1, 0, self.tree.len() / 2, end, v, check);
    }

    fn check_item(&self, at: usize, v: f64, check: &mut impl FnMut(&[Hit])) {
        let r = &self.near[at];
        if r.contains(v) {
            check(&[r.entry]);
        }
    }

    /// Visits items `[0, end)` under tree node `node` (covering `[lo, lo + width)`) whose
    /// upper bound reaches `v`.
    fn visit(
        &self,
        node: usize,
        lo: usize,
        width: usize,
        end: usize,
        v: f64,
        check: &mut impl FnMut(&[Hit]),
    ) {
        if lo >= end || self.tree[node] < v {
            return;
        }
        if width == 1 {
            self.check_item(lo, v, check);
            return;
        }
        let half = width / 2;
        self.visit(2 * node, lo, half, end, v, check);
        self.visit(2 * node + 1, lo + half, half, end, v, check);
    }
}

// === impl NearRange ===

impl NearRange {
    /// [`NumericRange::contains`], for a finite `v`.
    #[inline]
    fn contains(&self, v: f64) -> bool {
        (v > self.low || (!self.low_open && v == self.low))
            && (v < self.high || (!self.high_open && v == self.high))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(rules: &[(&'static str, &str)]) -> Machine<&'static str> {
        let mut b = MachineBuilder::new();
        for (id, p) in rules {
            b.add_rule(*id, &Pattern::parse(p).unwrap());
        }
        b.build()
    }

    #[test]
    fn many_rules_one_pass() {
        let m = machine(&[
            ("ec2", r#"{"source":["aws.ec2"]}"#),
            (
                "s3",
                r#"{"source":["aws.s3"],"detail":{"size":[{"numeric":[">",10]}]}}"#,
            ),
            ("png", r#"{"detail":{"key":[{"suffix":".png"}]}}"#),
            ("absent", r#"{"detail":{"x":[{"exists":false}]}}"#),
        ]);
        let got = m
            .matches(r#"{"source":"aws.s3","detail":{"size":11,"key":"a.png"}}"#)
            .unwrap();
        assert_eq!(got, vec![&"s3", &"png", &"absent"]);
    }

    #[test]
    fn array_consistency() {
        let m = machine(&[("r", r#"{"e":{"f":["Anna"],"l":["Jones"]}}"#)]);
        assert!(m
            .matches(r#"{"e":[{"f":"Anna","l":"Smith"},{"f":"Peter","l":"Jones"}]}"#)
            .unwrap()
            .is_empty());
        assert_eq!(
            m.matches(r#"{"e":[{"f":"x"},{"f":"Anna","l":"Jones"}]}"#)
                .unwrap(),
            vec![&"r"]
        );
    }

    #[test]
    fn range_index_prunes_but_finds_all() {
        let mut b = MachineBuilder::new();
        for i in 0..100 {
            let p = format!(r#"{{"x":[{{"numeric":[">=",{i},"<",{}]}}]}}"#, i + 10);
            b.add_rule(i, &Pattern::parse(&p).unwrap());
        }
        let m = b.build();
        let got: Vec<i32> = m
            .matches(r#"{"x":50}"#)
            .unwrap()
            .into_iter()
            .copied()
            .collect();
        assert_eq!(got, (41..=50).collect::<Vec<_>>());
    }

    #[test]
    fn range_index_finds_wide_ranges_behind_narrow_ones() {
        let mut b = MachineBuilder::new();
        let mut ranges = vec![(-1000.0, 1000.0), (0.0, 0.5)];
        ranges.extend((0..40).map(|i| (i as f64, i as f64 + 0.5)));
        ranges.push((30.0, f64::INFINITY));
        for (i, (low, high)) in ranges.iter().enumerate() {
            let p = if high.is_infinite() {
                format!(r#"{{"x":[{{"numeric":[">=",{low}]}}]}}"#)
            } else {
                format!(r#"{{"x":[{{"numeric":[">=",{low},"<",{high}]}}]}}"#)
            };
            b.add_rule(i, &Pattern::parse(&p).unwrap());
        }
        let m = b.build();
        for v in [-5.0, 0.25, 3.0, 3.75, 25.2, 35.0, 39.5, 1e6] {
            let want: Vec<usize> = (0..ranges.len())
                .filter(|&i| ranges[i].0 <= v && v < ranges[i].1)
                .collect();
            let got: Vec<usize> = m
                .matches(&format!(r#"{{"x":{v}}}"#))
                .unwrap()
                .into_iter()
                .copied()
                .collect();
            assert_eq!(got, want, "{v}");
        }
    }

    #[test]
    fn matched_table_keeps_one_event() {
        let mut m = Matched::default();
        let hits = |first| Hits {
            first,
            nested: false,
        };
        assert!(m.get(&7).is_none());
        for event in 0..3u32 {
            // Colliding and spread keys, through several doublings.
            let keys: Vec<u64> = (0..300u64)
                .map(|i| if i % 2 == 0 { i << 32 | 5 } else { i * 977 })
                .collect();
            for (n, &k) in keys.iter().enumerate() {
                assert!(m.insert(k, hits(n as u32 + event)).is_none());
            }
            for (n, &k) in keys.iter().enumerate() {
                assert_eq!(m.get(&k).map(|h| h.first), Some(n as u32 + event));
                let again = m.insert(k, hits(0)).map(|h| h.first);
                assert_eq!(again, Some(n as u32 + event));
            }
            assert!(m.get(&(1 << 40)).is_none());
            m.clear();
            assert!(keys.iter().all(|k| m.get(k).is_none()));
        }
    }

    #[test]
    fn packed_keys_hold_bytes_and_length() {
        let text: Vec<u8> = (1..=20u8).map(|b| b.wrapping_mul(97)).collect();
        for start in 0..4 {
            for len in 0..=SHORT_KEY {
                let key = &text[start..start + len];
                let mut bytes = [0u8; 16];
                bytes[..len].copy_from_slice(key);
                bytes[SHORT_KEY] = len as u8;
                assert_eq!(pack(key), Some(u128::from_le_bytes(bytes)), "{key:?}");
            }
        }
        assert_eq!(pack(&text[..SHORT_KEY + 1]), None);
    }

    #[test]
    fn range_index_agrees_with_every_range_checked() {
        // Many ranges sharing lower bounds across search blocks, open and closed, some
        // unbounded; every value at, between and beyond the bounds.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut ranges = Vec::new();
        let mut b = MachineBuilder::new();
        for i in 0..300 {
            let low = next(40) as f64 / 2.0;
            let high = low + (1 + next(12)) as f64 / 4.0;
            let (lo, hi) = (
                if next(2) == 0 { ">" } else { ">=" },
                if next(2) == 0 { "<" } else { "<=" },
            );
            let p = match next(10) {
                0 => format!(r#"{{"x":[{{"numeric":["{hi}",{high}]}}]}}"#),
                1 => format!(r#"{{"x":[{{"numeric":["{lo}",{low}]}}]}}"#),
                _ => format!(r#"{{"x":[{{"numeric":["{lo}",{low},"{hi}",{high}]}}]}}"#),
            };
            let p = Pattern::parse(&p).unwrap();
            let Matcher::Range(r) = &p.branches[0].fields[0].matchers[0] else {
                panic!("not a range: {p:?}");
            };
            ranges.push(r.clone());
            b.add_rule(i, &p);
        }
        let m = b.build();
        for k in -4..100 {
            let v = k as f64 / 4.0;
            let want: Vec<usize> = (0..ranges.len())
                .filter(|&i| ranges[i].contains(v))
                .collect();
            let got: Vec<usize> = m
                .matches_plain(&format!(r#"{{"x":{v}}}"#))
                .unwrap()
                .into_iter()
                .copied()
                .collect();
            assert_eq!(got, want, "{v}");
        }
    }

    #[test]
    fn range_index_keeps_open_and_closed_bounds() {
        let m = machine(&[
            ("gt", r#"{"x":[{"numeric":[">",5]}]}"#),
            ("ge", r#"{"x":[{"numeric":[">=",5]}]}"#),
            ("lt", r#"{"x":[{"numeric":["<",5]}]}"#),
            ("le", r#"{"x":[{"numeric":["<=",5]}]}"#),
            ("open", r#"{"x":[{"numeric":[">",5,"<",6]}]}"#),
            ("closed", r#"{"x":[{"numeric":[">=",5,"<=",6]}]}"#),
        ]);
        assert_eq!(
            m.matches(r#"{"x":5}"#).unwrap(),
            vec![&"ge", &"le", &"closed"]
        );
        assert_eq!(
            m.matches(r#"{"x":6}"#).unwrap(),
            vec![&"gt", &"ge", &"closed"]
        );
        assert_eq!(
            m.matches_plain(r#"{"x":5.5}"#).unwrap(),
            vec![&"gt", &"ge", &"open", &"closed"]
        );
    }

    #[test]
    fn plain_events_are_valid_without_repeated_or_dotted_keys() {
        assert_eq!(is_plain(r#"{"a":{"b":[1,{"c":2}]},"d":"x"}"#), Ok(true));
        assert_eq!(is_plain(r#"{"a":1,"b":{"a":2}}"#), Ok(true));
        assert_eq!(is_plain(r#"{"a":1,"a":2}"#), Ok(false));
        assert_eq!(is_plain(r#"{"a":[{"b":1,"b":2}]}"#), Ok(false));
        assert_eq!(is_plain(r#"{"a.b":1}"#), Ok(false));
        assert_eq!(is_plain(r#"{"\u0061":1}"#), Ok(false));
        assert!(is_plain(r#"{"a":1} x"#).is_err());
        assert!(is_plain(r#"{"a":[1,}"#).is_err());
        assert!(is_plain(r#"["a"]"#).is_err());
        assert!(is_plain("").is_err());
    }

    #[test]
    fn plain_matching_leaves_objects_early_but_finds_the_same() {
        let m = machine(&[
            ("street", r#"{"properties":{"STREET":["OCTAVIA"]}}"#),
            ("deep", r#"{"a":{"b":{"c":[1]}},"z":[{"exists":false}]}"#),
            ("array", r#"{"items":{"sku":["x"],"n":[2]}}"#),
        ]);
        for (event, want) in [
            (
                r#"{"type":"F","properties":{"STREET":"OCTAVIA","LOT":"1"},"geometry":{"c":[[1,2],[3,"]}"]]}}"#,
                vec!["street"],
            ),
            (
                r#"{"a":{"x":"}","b":{"c":1,"d":{}}},"q":[1,2]}"#,
                vec!["deep"],
            ),
            (r#"{"a":{"b":{"c":1}},"z":5}"#, vec![]),
            (
                r#"{"items":[{"sku":"x","n":1,"junk":{"k":"]"}},{"sku":"y","n":2}],"after":1}"#,
                vec![],
            ),
            (
                r#"{"items":[{"junk":[1],"n":2,"sku":"x"}],"after":{"x":"}"}}"#,
                vec!["array"],
            ),
        ] {
            assert_eq!(is_plain(event), Ok(true), "{event}");
            assert_eq!(
                m.matches(event).unwrap(),
                want.iter().collect::<Vec<_>>(),
                "{event}"
            );
            assert_eq!(
                m.matches_plain(event).unwrap(),
                want.iter().collect::<Vec<_>>(),
                "{event}"
            );
        }
    }

    #[test]
    fn machine_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Machine<String>>();
    }
}
