//! The compiled matcher for all rules of a bus.
//!
//! Rules are not evaluated one by one. Every field path used by any rule gets one value index
//! (hash maps for exact strings, numbers and case-folded strings; prefix/suffix maps probed by
//! the distinct lengths present; an interval tree for numeric ranges; a short scan list for the
//! rest). Each branch is registered under one *trigger*: its most selective required field
//! condition. Matching flattens the event once, probes each value's index, and only branches
//! whose trigger fired (plus those satisfiable by absence alone) are completed by looking up
//! their other conditions among the matched entries, with array consistency. The cost
//! therefore follows the event and the rules it actually touches, not the number of rules.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::event::{flatten, flatten_plain, EventError, Leaf, Step};
use crate::pattern::{fold_key, Matcher, Pattern, Scalar};

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
    field_ids: HashMap<String, FieldId>,
    /// Every field path (as its field) and every proper dotted prefix of one: the paths worth
    /// descending; the flattener skips every other value unread. Beside each, how many of
    /// these paths sit one key below it (what a plain event's object under it can hold).
    steps: FastMap<String, (Step, u32)>,
    /// How many of the paths are one key long.
    root_children: u32,
    fields: Vec<FieldIndex>,
    /// Branches that every event must be checked against (all conditions allow absence).
    always: Vec<BranchId>,
}

#[derive(Debug)]
struct BranchInfo {
    rule: u32,
    /// In the pattern's (sorted) field order.
    slots: Vec<Slot>,
}

#[derive(Debug, Clone)]
struct Slot {
    field: FieldId,
    absent: bool,
    /// The entries (in the field's index) of this condition's matchers.
    entries: Vec<EntryId>,
}

/// One distinct matcher on one field.
#[derive(Debug)]
struct Entry {
    matcher: Matcher,
    /// How many branch conditions use it: the lower, the better a trigger.
    uses: u32,
    /// Branches for which this entry is (part of) the trigger condition.
    triggers: Vec<BranchId>,
    /// Verified against every value of the field (no index applies).
    scanned: bool,
}

#[derive(Debug, Default)]
struct FieldIndex {
    entries: Vec<Entry>,
    by_matcher: HashMap<String, EntryId>,
    exact: HashMap<String, Vec<EntryId>>,
    literal: HashMap<String, Vec<EntryId>>,
    numeric: HashMap<u64, Vec<EntryId>>,
    prefix: AffixIndex,
    suffix: AffixIndex,
    folded: HashMap<String, Vec<EntryId>>,
    folded_prefix: AffixIndex,
    folded_suffix: AffixIndex,
    ranges: RangeIndex,
    /// Matchers with no index (anything-but, exists, IP ranges, unanchored wildcards): always
    /// verified.
    scan: Vec<EntryId>,
}

/// Keys probed by every distinct key length present.
#[derive(Debug, Default)]
struct AffixIndex {
    map: HashMap<Vec<u8>, Vec<EntryId>>,
    lengths: Vec<usize>,
}

/// Numeric ranges sorted by lower bound, with a max-upper-bound tree for pruning.
#[derive(Debug, Default)]
struct RangeIndex {
    items: Vec<(f64, f64, EntryId)>,
    tree: Vec<f64>,
}

/// The leaves each matched entry accepted, keyed by `field << 32 | entry`.
type Matched = FastMap<u64, Vec<u32>>;

/// The leaves of each field present in the event.
type ByField = FastMap<FieldId, Vec<u32>>;

/// A map with a cheap unkeyed hash (FxHash's), for the per-event maps and the path lookup.
/// Safe against hash flooding: the event only looks keys up in the path map, which is fixed
/// when the machine is built, and the per-event maps are keyed by field and entry ids.
type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[derive(Default)]
struct FxHasher(u64);

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
            field_ids: HashMap::new(),
            steps: FastMap::default(),
            root_children: 0,
            fields: Vec::new(),
            always: Vec::new(),
        };
        for (id, pattern) in self.rules {
            let rule = m.rules.len() as u32;
            m.rules.push(id);
            for branch in pattern.branches {
                let bid = m.branches.len() as BranchId;
                let mut slots = Vec::with_capacity(branch.fields.len());
                for cond in branch.fields {
                    let field = m.field_id(&cond.path);
                    let index = &mut m.fields[field as usize];
                    let entries = cond.matchers.into_iter().map(|mt| index.add(mt)).collect();
                    slots.push(Slot {
                        field,
                        absent: cond.absent,
                        entries,
                    });
                }
                if slots.iter().all(|s| s.absent) {
                    m.always.push(bid);
                }
                m.branches.push(BranchInfo { rule, slots });
            }
        }
        for f in &mut m.fields {
            f.finish();
        }
        m.count_children();
        m.assign_triggers();
        m
    }
}

// === impl Machine ===

impl<R> Machine<R> {
    /// The rules whose patterns match `event` (raw JSON text), in the order they were added.
    pub fn matches(&self, event: &str) -> Result<Vec<&R>, EventError> {
        let leaves = flatten(event, |p| self.steps.get(p).map_or(Step::Skip, |s| s.0))?;
        Ok(self.match_leaves(&leaves))
    }

    /// [`Machine::matches`] for an event that [`is_plain`] accepted: the same rules, found
    /// without checking the syntax of the parts no rule reads and without reading an object
    /// past the last key the rules use (what the service does after `PutEvents` has checked
    /// the event once). Given any other text the answer is unspecified (but memory-safe).
    pub fn matches_plain(&self, event: &str) -> Result<Vec<&R>, EventError> {
        let leaves = flatten_plain(event, self.root_children, |p| {
            self.steps.get(p).copied().unwrap_or((Step::Skip, 0))
        })?;
        Ok(self.match_leaves(&leaves))
    }

    fn match_leaves(&self, leaves: &[Leaf<'_>]) -> Vec<&R> {
        let mut by_field = ByField::default();
        let mut matched_entries = Matched::default();
        let mut candidates: Vec<BranchId> = Vec::new();
        for (i, leaf) in leaves.iter().enumerate() {
            let field = leaf.field;
            by_field.entry(field).or_default().push(i as u32);
            self.fields[field as usize].probe(&leaf.value, |id, entry| {
                let leaves = matched_entries
                    .entry((field as u64) << 32 | id as u64)
                    .or_default();
                if leaves.is_empty() {
                    candidates.extend_from_slice(&entry.triggers);
                }
                leaves.push(i as u32);
            });
        }
        candidates.extend_from_slice(&self.always);
        candidates.sort_unstable();
        candidates.dedup();
        // Never sized by the rule count: the per-event cost must not grow with it.
        let mut matched: Vec<u32> = Vec::new();
        for bid in candidates {
            let branch = &self.branches[bid as usize];
            // A rule's branches have consecutive ids, so candidates (sorted) visit them together.
            if matched.last() == Some(&branch.rule) {
                continue;
            }
            if branch_matches(branch, &matched_entries, leaves, &by_field) {
                matched.push(branch.rule);
            }
        }
        matched.sort_unstable();
        matched
            .into_iter()
            .map(|r| &self.rules[r as usize])
            .collect()
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
        self.steps.insert(path.to_owned(), (Step::Field(id), 0));
        for (i, _) in path.match_indices('.') {
            self.steps
                .entry(path[..i].to_owned())
                .or_insert((Step::Descend, 0));
        }
        id
    }

    /// Counts, for each path, the paths one key below it (a plain event has no dotted keys, so
    /// a path's parent is the path up to its last dot).
    fn count_children(&mut self) {
        let parents: Vec<Option<String>> = self
            .steps
            .keys()
            .map(|p| p.rfind('.').map(|i| p[..i].to_owned()))
            .collect();
        for parent in parents {
            match parent {
                Some(p) => {
                    if let Some(entry) = self.steps.get_mut(&p) {
                        entry.1 += 1;
                    }
                }
                None => self.root_children += 1,
            }
        }
    }

    /// Registers each branch under its most selective required condition, or in `always`
    /// when absence alone can satisfy every condition.
    fn assign_triggers(&mut self) {
        for (bid, branch) in self.branches.iter().enumerate() {
            let best = branch.slots.iter().filter(|s| !s.absent).min_by_key(|s| {
                let index = &self.fields[s.field as usize];
                s.entries
                    .iter()
                    .map(|&e| index.trigger_cost(e))
                    .sum::<u64>()
            });
            match best {
                Some(slot) => {
                    let index = &mut self.fields[slot.field as usize];
                    for &e in &slot.entries {
                        index.entries[e as usize].triggers.push(bid as BranchId);
                    }
                }
                None => self.always.push(bid as BranchId),
            }
        }
    }
}

/// Whether the matched entries can be combined into a match of `branch`: one value (or, where
/// allowed, absence) per condition, never taking two values from different elements of the
/// same array.
fn branch_matches(
    branch: &BranchInfo,
    matched: &Matched,
    leaves: &[Leaf],
    by_field: &ByField,
) -> bool {
    // Fast path, without allocating: when every condition is required and no value it matched
    // sits in an array element, any choice of values is consistent.
    let mut simple = true;
    for slot in &branch.slots {
        let mut hit = false;
        for &e in &slot.entries {
            if let Some(ls) = matched.get(&((slot.field as u64) << 32 | e as u64)) {
                hit = true;
                simple &= ls.iter().all(|&l| leaves[l as usize].membership.is_empty());
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
    let mut per_slot: Vec<Vec<u32>> = Vec::with_capacity(branch.slots.len());
    for slot in &branch.slots {
        let mut hits = Vec::new();
        for &e in &slot.entries {
            if let Some(ls) = matched.get(&((slot.field as u64) << 32 | e as u64)) {
                hits.extend_from_slice(ls);
            }
        }
        if hits.is_empty() && !slot.absent {
            return false;
        }
        per_slot.push(hits);
    }
    search(branch, 0, &per_slot, &mut Vec::new(), leaves, by_field)
}

fn search(
    branch: &BranchInfo,
    slot: usize,
    per_slot: &[Vec<u32>],
    membership: &mut Vec<(u32, u32)>,
    leaves: &[Leaf],
    by_field: &ByField,
) -> bool {
    let Some(info) = branch.slots.get(slot) else {
        return true;
    };
    for &leaf in &per_slot[slot] {
        let leaf = &leaves[leaf as usize];
        let Some(added) = consistent(membership, &leaf.membership) else {
            continue;
        };
        let before = membership.len();
        membership.extend(added);
        let ok = search(branch, slot + 1, per_slot, membership, leaves, by_field);
        membership.truncate(before);
        if ok {
            return true;
        }
    }
    if info.absent {
        // Absent unless some value at this path sits in the array elements chosen so far.
        let present = by_field.get(&info.field).is_some_and(|ls| {
            ls.iter()
                .any(|&l| consistent(membership, &leaves[l as usize].membership).is_some())
        });
        if !present {
            return search(branch, slot + 1, per_slot, membership, leaves, by_field);
        }
    }
    false
}

/// The memberships `field` adds to `so_far`, or `None` if it sits in another element of an
/// array already pinned.
fn consistent(so_far: &[(u32, u32)], field: &[(u32, u32)]) -> Option<Vec<(u32, u32)>> {
    let mut added = Vec::new();
    for &(array, index) in field {
        match so_far.iter().find(|(a, _)| *a == array) {
            Some(&(_, i)) if i != index => return None,
            Some(_) => {}
            None => added.push((array, index)),
        }
    }
    Some(added)
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

    #[inline]
    fn finish(&self) -> u64 {
        self.0
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
        match &matcher {
            Matcher::Exact(s) => self.exact.entry(s.clone()).or_default().push(id),
            Matcher::Literal(s) => self.literal.entry(s.clone()).or_default().push(id),
            Matcher::NumericEquals(n) => self.numeric.entry(n.to_bits()).or_default().push(id),
            Matcher::Prefix(p) => self.prefix.add(p.as_bytes(), id),
            Matcher::Suffix(s) => self.suffix.add(s.as_bytes(), id),
            Matcher::EqualsIgnoreCase(f) => match f.key() {
                Some(k) => self.folded.entry(k.to_owned()).or_default().push(id),
                None => self.scan.push(id),
            },
            Matcher::PrefixIgnoreCase(f) => match f.key() {
                Some(k) => self.folded_prefix.add(k.as_bytes(), id),
                None => self.scan.push(id),
            },
            Matcher::SuffixIgnoreCase(f) => match f.key() {
                Some(k) => self.folded_suffix.add(k.as_bytes(), id),
                None => self.scan.push(id),
            },
            Matcher::Wildcard(g) => {
                if let Some(lit) = g.literal() {
                    let s = String::from_utf8_lossy(lit).into_owned();
                    self.exact.entry(s).or_default().push(id);
                } else if let Some(p) = g.literal_prefix().filter(|p| !p.is_empty()) {
                    self.prefix.add(p, id);
                } else if let Some(s) = g.literal_suffix().filter(|s| !s.is_empty()) {
                    self.suffix.add(s, id);
                } else {
                    self.scan.push(id);
                }
            }
            Matcher::Range(r) => {
                let low = r.low.map_or(f64::NEG_INFINITY, |(v, _)| v);
                let high = r.high.map_or(f64::INFINITY, |(v, _)| v);
                self.ranges.items.push((low, high, id));
            }
            Matcher::Ip(..) | Matcher::Exists | Matcher::AnythingBut(_) => self.scan.push(id),
        }
        self.by_matcher.insert(key, id);
        let scanned = self.scan.last() == Some(&id);
        self.entries.push(Entry {
            matcher,
            uses: 1,
            triggers: Vec::new(),
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

    /// Calls `hit` for every entry whose matcher accepts `value`.
    fn probe(&self, value: &Scalar, mut hit: impl FnMut(EntryId, &Entry)) {
        let mut check = |ids: &[EntryId]| {
            for &id in ids {
                let entry = &self.entries[id as usize];
                if entry.matcher.matches(value) {
                    hit(id, entry);
                }
            }
        };
        match value {
            Scalar::Str(s) => {
                if let Some(ids) = self.exact.get(s.as_ref()) {
                    check(ids);
                }
                self.prefix.probe(s.as_bytes(), true, &mut check);
                self.suffix.probe(s.as_bytes(), false, &mut check);
                if !self.folded.is_empty()
                    || !self.folded_prefix.map.is_empty()
                    || !self.folded_suffix.map.is_empty()
                {
                    let k = fold_key(s);
                    if let Some(ids) = self.folded.get(&k) {
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
    fn add(&mut self, key: &[u8], id: EntryId) {
        self.map.entry(key.to_vec()).or_default().push(id);
        if !self.lengths.contains(&key.len()) {
            self.lengths.push(key.len());
        }
    }

    fn finish(&mut self) {
        self.lengths.sort_unstable();
    }

    fn probe(&self, value: &[u8], prefix: bool, check: &mut impl FnMut(&[EntryId])) {
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

// === impl RangeIndex ===

impl RangeIndex {
    fn finish(&mut self) {
        self.items
            .sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
        let n = self.items.len();
        self.tree = vec![f64::NEG_INFINITY; 2 * n.next_power_of_two().max(1)];
        let base = self.tree.len() / 2;
        for (i, item) in self.items.iter().enumerate() {
            self.tree[base + i] = item.1;
        }
        for i in (1..base).rev() {
            self.tree[i] = self.tree[2 * i].max(self.tree[2 * i + 1]);
        }
    }

    fn probe(&self, v: f64, check: &mut impl FnMut(&[EntryId])) {
        if self.items.is_empty() {
            return;
        }
        let end = self.items.partition_point(|item| item.0 <= v);
        let base = self.tree.len() / 2;
        self.visit(1, 0, base, end, v, check);
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
        check: &mut impl FnMut(&[EntryId]),
    ) {
        if lo >= end || self.tree[node] < v {
            return;
        }
        if width == 1 {
            check(&[self.items[lo].2]);
            return;
        }
        let half = width / 2;
        self.visit(2 * node, lo, half, end, v, check);
        self.visit(2 * node + 1, lo + half, half, end, v, check);
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
