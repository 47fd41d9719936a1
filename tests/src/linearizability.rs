//! A linearizability checker in the style of Knossos and Porcupine.
//!
//! A history of [`Operation`]s (each with the time its request was sent, `call`, and the time
//! its answer arrived, `ret`) is linearizable when every operation can be given one instant
//! between its call and its return such that applying the operations in that order to a
//! sequential [`Model`] produces exactly the observed outputs.
//!
//! # Algorithm
//!
//! * **P-compositionality**: different keys are independent registers, so the history is
//!   split per key and each part is searched on its own (many small searches, not one big).
//! * **Wing–Gong with Lowe's just-in-time linearization**: a part's calls and returns form a
//!   time-ordered doubly linked list. The search walks it from the front; at a call it tries
//!   to linearize that operation now (the model must accept its input and output in the
//!   current state), lifts its call and return out of the list and restarts at the front.
//!   Reaching a return means an operation that already returned is not linearized yet, so
//!   the last choice is undone (operation put back, state restored) and the next candidate
//!   after it is tried. Choices live on an explicit stack: no deep recursion.
//! * **Memoisation**: a cache holds every (set of linearized operations as a bitset, model
//!   state) reached; reaching one again cannot lead anywhere new. The cache size per key is
//!   the search budget: past it the verdict is [`Verdict::Undecided`].
//!
//! Events at equal timestamps are ordered calls first: an operation that returned at the
//! very instant another was called counts as concurrent with it (the permissive reading).
//!
//! # Unknown outcomes
//!
//! An operation whose `output` or `ret` is `None` (a timeout, a 5xx, a dropped connection)
//! may or may not have taken effect, possibly long after its call, even after the client gave
//! up. It is modelled with a return at +infinity and is optional: it gets a call entry but no
//! return entry, so the search may linearize it anywhere after its call or never, and it
//! succeeds as soon as every operation with a known outcome is linearized. When linearized
//! it has its deterministic effect ([`Model::step`] with output `None`). Two sound reductions
//! keep this cheap: unknown operations called after the last known return are dropped (they
//! could only go after everything that must be placed), and linearizing an unknown operation
//! that leaves the state unchanged is never tried (leaving it out is equivalent).

use std::collections::{BTreeMap, HashSet};
use std::fmt::{Debug, Write as _};
use std::hash::Hash;

/// A sequential specification of the object under test.
pub trait Model {
    /// The object's state; compared and hashed for the memoisation cache.
    type State: Clone + Eq + Hash + Debug;
    /// What a client asked for.
    type Input: Clone + Debug;
    /// What a client was told.
    type Output: Clone + Debug;
    /// The state before any operation.
    fn init(&self) -> Self::State;
    /// The state after applying `input` in `state` if that could have produced `output`
    /// (`None` output = the outcome is unknown: the operation may or may not have taken
    /// effect; when it takes effect its effect is the deterministic one), else `None`.
    fn step(&self, state: &Self::State, input: &Self::Input, output: Option<&Self::Output>) -> Option<Self::State>;
}

/// One client operation as observed by the test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<K, I, O> {
    /// Which client issued it (for reports only; real-time order is all that matters).
    pub client: usize,
    /// The register it touched; different keys are checked independently.
    pub key: K,
    /// What was asked.
    pub input: I,
    /// What was answered; `None` when the outcome is unknown.
    pub output: Option<O>,
    /// Monotonic timestamp taken just before sending the request.
    pub call: u64,
    /// Monotonic timestamp taken just after receiving the answer; `None` when none came.
    /// A value below `call` is treated as `call`.
    pub ret: Option<u64>,
}

impl<K, I, O> Operation<K, I, O> {
    /// An operation that completed with a known `output` between `call` and `ret`.
    pub fn completed(client: usize, key: K, input: I, output: O, call: u64, ret: u64) -> Self {
        let output = Some(output);
        Self {
            output,
            ..Self::unknown(client, key, input, call, Some(ret))
        }
    }

    /// An operation whose outcome is unknown (`ret` is when the client gave up, if it did).
    pub fn unknown(client: usize, key: K, input: I, call: u64, ret: Option<u64>) -> Self {
        Self {
            client,
            key,
            input,
            output: None,
            call,
            ret,
        }
    }

    /// Whether the outcome is known: both an output and a return time were observed.
    pub fn is_known(&self) -> bool {
        self.output.is_some() && self.ret.is_some()
    }
}

/// The result of [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<K> {
    /// Every key's history has a linearization.
    Linearizable,
    /// This key's history has none.
    NotLinearizable {
        /// The key whose operations cannot be linearized.
        key: K,
        /// The longest linearizable prefix found and the operations that could not be
        /// placed after it, human-readable.
        explanation: String,
    },
    /// The search for this key explored more states than the budget allowed.
    Undecided {
        /// The key whose search ran out of budget.
        key: K,
    },
}

/// Check `history` against `model`, key by key, exploring at most `budget` distinct
/// (linearized set, state) configurations per key. A violation on any key wins over an
/// exhausted budget on another; among several, the smallest key is reported.
pub fn check<M, K>(model: &M, history: &[Operation<K, M::Input, M::Output>], budget: usize) -> Verdict<K>
where
    M: Model,
    K: Ord + Clone + Debug,
{
    let mut by_key: BTreeMap<&K, Vec<usize>> = BTreeMap::new();
    for (index, op) in history.iter().enumerate() {
        by_key.entry(&op.key).or_default().push(index);
    }
    let mut undecided = None;
    for (key, indices) in by_key {
        match check_partition(model, history, &indices, budget) {
            Partition::Linearizable => {}
            Partition::Violation(details) => {
                let (explanation, key) = (format!("key {key:?}: {details}"), key.clone());
                return Verdict::NotLinearizable { key, explanation };
            }
            Partition::OutOfBudget => {
                undecided.get_or_insert_with(|| key.clone());
            }
        }
    }
    match undecided {
        Some(key) => Verdict::Undecided { key },
        None => Verdict::Linearizable,
    }
}

/// What the search concluded about one key.
enum Partition {
    Linearizable,
    Violation(String),
    OutOfBudget,
}

/// End-of-list marker in [`Timeline`].
const NIL: usize = usize::MAX;
/// The head sentinel of [`Timeline`].
const HEAD: usize = 0;

/// The calls and returns of one key, time-ordered, as a doubly linked list over indices
/// (node 0 is the head sentinel) from which operations can be lifted and put back in O(1).
struct Timeline {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// For each node: the local operation and whether the node is its call.
    node_op: Vec<(usize, bool)>,
    call_node: Vec<usize>,
    /// `NIL` for operations with unknown outcome (their return is at +infinity).
    return_node: Vec<usize>,
}

impl Timeline {
    /// `events` are (time, is_return, local operation), already sorted.
    fn new(events: &[(u64, bool, usize)], op_count: usize) -> Self {
        let nodes = events.len() + 1;
        let mut timeline = Self {
            next: (1..=nodes).map(|n| if n == nodes { NIL } else { n }).collect(),
            prev: (0..nodes).map(|n| n.checked_sub(1).unwrap_or(NIL)).collect(),
            node_op: Vec::with_capacity(nodes),
            call_node: vec![NIL; op_count],
            return_node: vec![NIL; op_count],
        };
        timeline.node_op.push((NIL, false));
        for (position, &(_, is_return, op)) in events.iter().enumerate() {
            timeline.node_op.push((op, !is_return));
            if is_return {
                timeline.return_node[op] = position + 1;
            } else {
                timeline.call_node[op] = position + 1;
            }
        }
        timeline
    }

    fn unlink(&mut self, node: usize) {
        let (before, after) = (self.prev[node], self.next[node]);
        self.next[before] = after;
        if after != NIL {
            self.prev[after] = before;
        }
    }

    fn relink(&mut self, node: usize) {
        let (before, after) = (self.prev[node], self.next[node]);
        self.next[before] = node;
        if after != NIL {
            self.prev[after] = node;
        }
    }

    /// Remove an operation's call and return (dancing links: undone in reverse order).
    fn lift(&mut self, op: usize) {
        self.unlink(self.call_node[op]);
        if self.return_node[op] != NIL {
            self.unlink(self.return_node[op]);
        }
    }

    fn unlift(&mut self, op: usize) {
        if self.return_node[op] != NIL {
            self.relink(self.return_node[op]);
        }
        self.relink(self.call_node[op]);
    }
}

/// A fixed-size set of local operation indices.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(size: usize) -> Self {
        Self(vec![0; size.div_ceil(64)])
    }
    fn insert(&mut self, index: usize) {
        self.0[index / 64] |= 1 << (index % 64);
    }
    fn remove(&mut self, index: usize) {
        self.0[index / 64] &= !(1 << (index % 64));
    }
    fn contains(&self, index: usize) -> bool {
        self.0[index / 64] & (1 << (index % 64)) != 0
    }
}

/// Wing–Gong/Lowe search over the operations `indices` (all on one key) of `history`.
fn check_partition<M: Model, K>(
    model: &M,
    history: &[Operation<K, M::Input, M::Output>],
    indices: &[usize],
    budget: usize,
) -> Partition {
    let Some(last_known_return) = indices
        .iter()
        .map(|&i| &history[i])
        .filter(|op| op.is_known())
        .filter_map(|op| op.ret.map(|ret| ret.max(op.call)))
        .max()
    else {
        return Partition::Linearizable;
    };
    // Local operations: every known one, and the unknown ones that could matter.
    let ops: Vec<usize> = indices
        .iter()
        .copied()
        .filter(|&i| history[i].is_known() || history[i].call <= last_known_return)
        .collect();
    let known: Vec<bool> = ops.iter().map(|&i| history[i].is_known()).collect();
    let mut events = Vec::with_capacity(2 * ops.len());
    for (local, &i) in ops.iter().enumerate() {
        let op = &history[i];
        events.push((op.call, false, local));
        if let (true, Some(ret)) = (known[local], op.ret) {
            events.push((ret.max(op.call), true, local));
        }
    }
    events.sort_unstable();
    let mut timeline = Timeline::new(&events, ops.len());

    let mut remaining_known = known.iter().filter(|&&k| k).count();
    let mut state = model.init();
    let mut linearized = Bitset::new(ops.len());
    let mut cache: HashSet<(Bitset, M::State)> = HashSet::new();
    // Each linearized operation with the state before it.
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut entry = timeline.next[HEAD];
    loop {
        let candidate = (entry != NIL).then(|| timeline.node_op[entry]);
        if let Some((local, true)) = candidate {
            let op = &history[ops[local]];
            let next_state = model
                .step(&state, &op.input, op.output.as_ref().filter(|_| known[local]))
                .filter(|next| known[local] || *next != state);
            if let Some(next_state) = next_state {
                linearized.insert(local);
                let key = (linearized.clone(), next_state);
                if !cache.contains(&key) {
                    let next_state = key.1.clone();
                    cache.insert(key);
                    if cache.len() > budget {
                        return Partition::OutOfBudget;
                    }
                    stack.push((local, std::mem::replace(&mut state, next_state)));
                    timeline.lift(local);
                    if known[local] {
                        remaining_known -= 1;
                        if remaining_known == 0 {
                            return Partition::Linearizable;
                        }
                    }
                    if stack.len() > longest.len() {
                        longest = stack.iter().map(|&(op, _)| op).collect();
                    }
                    entry = timeline.next[HEAD];
                    continue;
                }
                linearized.remove(local);
            }
            entry = timeline.next[entry];
        } else {
            // A pending return (or the end): undo the last choice and try the next one.
            let Some((local, previous)) = stack.pop() else {
                return Partition::Violation(explain(model, history, &ops, &known, &longest));
            };
            state = previous;
            linearized.remove(local);
            timeline.unlift(local);
            if known[local] {
                remaining_known += 1;
            }
            entry = timeline.next[timeline.call_node[local]];
        }
    }
}

/// How many operations of the longest prefix the explanation shows.
const SHOWN_PREFIX: usize = 20;

/// Describe the longest linearizable prefix and the operations that could not follow it.
fn explain<M: Model, K>(
    model: &M,
    history: &[Operation<K, M::Input, M::Output>],
    ops: &[usize],
    known: &[bool],
    longest: &[usize],
) -> String {
    let total_known = known.iter().filter(|&&k| k).count();
    let placed_known = longest.iter().filter(|&&local| known[local]).count();
    let (unknown, placed, skipped) = (
        ops.len() - total_known,
        longest.len(),
        longest.len().saturating_sub(SHOWN_PREFIX),
    );
    let mut text = format!(
        "no linearization of the {total_known} operations with a known outcome ({unknown} with an unknown one \
         may be included or left out).\nLongest linearizable prefix found: {placed} operations, {placed_known} \
         of them with a known outcome (the first {skipped} not shown):\n"
    );
    let mut state = model.init();
    let mut in_prefix = Bitset::new(ops.len());
    for (position, &local) in longest.iter().enumerate() {
        in_prefix.insert(local);
        let op = &history[ops[local]];
        let output = op.output.as_ref().filter(|_| known[local]);
        match model.step(&state, &op.input, output) {
            Some(next) => state = next,
            None => break,
        }
        if position >= skipped {
            let _ = writeln!(text, "  {}  => {state:?}", describe(op, ops[local]));
        }
    }
    let _ = writeln!(text, "State after it: {state:?}");
    let pending: Vec<usize> = (0..ops.len())
        .filter(|&local| known[local] && !in_prefix.contains(local))
        .collect();
    let earliest_return = pending.iter().filter_map(|&local| history[ops[local]].ret).min();
    text.push_str(
        "Operations with a known outcome that could not be placed next (called before the \
         earliest pending return; none of them, in any order, leads to a full linearization):\n",
    );
    for &local in &pending {
        let op = &history[ops[local]];
        if earliest_return.is_some_and(|earliest| op.call <= earliest) {
            let _ = writeln!(text, "  {}", describe(op, ops[local]));
        }
    }
    text
}

/// One line about an operation: its index in the history, client, interval, input, output.
fn describe<K, I: Debug, O: Debug>(op: &Operation<K, I, O>, index: usize) -> String {
    let ret = op.ret.map_or_else(|| "?".to_owned(), |ret| ret.to_string());
    let output = match (&op.output, op.ret) {
        (Some(output), Some(_)) => format!("{output:?}"),
        _ => "unknown outcome".to_owned(),
    };
    format!(
        "#{index} client {} [{}..{ret}] {:?} -> {output}",
        op.client, op.call, op.input
    )
}

/// A version-checked register holding an appointment's (version, title): reads, and writes
/// that succeed only if the current version is the expected one (HTTP `If-Match`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CasRegister {
    initial: Option<(u64, String)>,
}

/// An operation on a [`CasRegister`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOp {
    /// Read the current (version, title).
    Read,
    /// Set the title if the current version is `expect`; the version then goes up by one.
    Cas {
        /// The version the client believes is current.
        expect: u64,
        /// The new title.
        title: String,
    },
}

/// The version was not the expected one (HTTP 412); nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mismatch;

/// What a [`CasRegister`] operation answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterResult {
    /// The (version, title) read; `None` if the appointment did not exist.
    Read(Option<(u64, String)>),
    /// The new version, or the precondition failure.
    Cas(Result<u64, Mismatch>),
}

impl CasRegister {
    /// A register whose appointment does not exist yet (every Cas on it is a mismatch).
    pub fn new() -> Self {
        Self::default()
    }

    /// A register whose appointment starts at `version` with `title`.
    pub fn starting_at(version: u64, title: impl Into<String>) -> Self {
        Self {
            initial: Some((version, title.into())),
        }
    }
}

impl Model for CasRegister {
    type State = Option<(u64, String)>;
    type Input = RegisterOp;
    type Output = RegisterResult;

    fn init(&self) -> Self::State {
        self.initial.clone()
    }

    fn step(&self, state: &Self::State, input: &RegisterOp, output: Option<&RegisterResult>) -> Option<Self::State> {
        match (input, output) {
            (RegisterOp::Read, None) => Some(state.clone()),
            (RegisterOp::Read, Some(RegisterResult::Read(seen))) => (seen == state).then(|| state.clone()),
            (RegisterOp::Cas { expect, title }, output) => {
                let current = state.as_ref().map(|(version, _)| *version);
                let applies = current == Some(*expect);
                let applied = Some((expect.saturating_add(1), title.clone()));
                match output {
                    None => Some(if applies { applied } else { state.clone() }),
                    Some(RegisterResult::Cas(Ok(new_version))) => {
                        (applies && *new_version == expect.saturating_add(1)).then_some(applied)
                    }
                    Some(RegisterResult::Cas(Err(Mismatch))) => (!applies).then(|| state.clone()),
                    Some(RegisterResult::Read(_)) => None,
                }
            }
            (RegisterOp::Read, Some(RegisterResult::Cas(_))) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Op = Operation<&'static str, RegisterOp, RegisterResult>;
    const BUDGET: usize = 1_000_000;

    fn read_of(key: &'static str, call: u64, ret: u64, version: u64, title: &str) -> Op {
        let seen = RegisterResult::Read(Some((version, title.to_owned())));
        Operation::completed(0, key, RegisterOp::Read, seen, call, ret)
    }

    fn read(call: u64, ret: u64, version: u64, title: &str) -> Op {
        read_of("k", call, ret, version, title)
    }

    fn cas(call: u64, ret: u64, expect: u64, title: &str, result: Result<u64, Mismatch>) -> Op {
        let mut op = unknown_cas(call, Some(ret), expect, title);
        op.output = Some(RegisterResult::Cas(result));
        op
    }

    fn unknown_cas(call: u64, ret: Option<u64>, expect: u64, title: &str) -> Op {
        let title = title.to_owned();
        Operation::unknown(0, "k", RegisterOp::Cas { expect, title }, call, ret)
    }

    fn verdict(history: &[Op]) -> Verdict<&'static str> {
        check(&CasRegister::starting_at(1, "a"), history, BUDGET)
    }

    /// Check a named case against a register starting at (1, "a").
    fn assert_case(name: &str, linearizable: bool, history: Vec<Op>) {
        match verdict(&history) {
            Verdict::Linearizable if linearizable => {}
            Verdict::NotLinearizable { key: "k", .. } if !linearizable => {}
            other => panic!("{name}: expected linearizable = {linearizable}, got {other:?}"),
        }
    }

    #[test]
    fn linearizable_histories_are_accepted() {
        let write = || cas(10, 50, 1, "b", Ok(2));
        assert_case("empty", true, vec![]);
        let sequential = vec![
            read(0, 1, 1, "a"),
            cas(2, 3, 1, "b", Ok(2)),
            read(4, 5, 2, "b"),
            cas(6, 7, 1, "c", Err(Mismatch)),
            read(8, 9, 2, "b"),
        ];
        assert_case("sequential", true, sequential);
        // The loser returned first; the winner of version 2 overlaps it and the next Cas.
        let one_winner = vec![
            cas(0, 10, 1, "b", Err(Mismatch)),
            cas(1, 20, 1, "c", Ok(2)),
            cas(2, 30, 2, "d", Ok(3)),
            read(31, 32, 3, "d"),
        ];
        assert_case("one winner", true, one_winner);
        // The last read is called before the one seeing the new value returned.
        let either = vec![
            write(),
            read(20, 30, 1, "a"),
            read(25, 35, 2, "b"),
            read(30, 60, 1, "a"),
        ];
        assert_case("reads see either", true, either);
        assert_case(
            "old then new",
            true,
            vec![write(), read(20, 30, 1, "a"), read(31, 40, 2, "b")],
        );
        // Equal timestamps count as concurrent: a read called at the write's return instant.
        assert_case("tie", true, vec![write(), read(50, 60, 1, "a")]);
        // An appointment that does not exist fails every Cas.
        let (missing, created) = ([cas(0, 1, 1, "b", Err(Mismatch))], [cas(0, 1, 1, "b", Ok(2))]);
        assert_eq!(check(&CasRegister::new(), &missing, BUDGET), Verdict::Linearizable);
        let created = check(&CasRegister::new(), &created, BUDGET);
        assert!(matches!(created, Verdict::NotLinearizable { .. }), "{created:?}");
    }

    #[test]
    fn non_linearizable_histories_are_rejected() {
        let write = || cas(10, 50, 1, "b", Ok(2));
        assert_case("stale read", false, vec![write(), read(51, 60, 1, "a")]);
        assert_case("both win", false, vec![write(), cas(11, 51, 1, "c", Ok(2))]);
        assert_case("both win, chained", false, vec![write(), cas(11, 51, 1, "c", Ok(3))]);
        assert_case("never written", false, vec![write(), read(20, 60, 2, "z")]);
        assert_case(
            "back in time",
            false,
            vec![write(), read(20, 30, 2, "b"), read(31, 40, 1, "a")],
        );
        assert_case("wrong new version", false, vec![cas(0, 10, 1, "b", Ok(5))]);
        assert_case(
            "mismatch on the expected version",
            false,
            vec![cas(0, 10, 1, "b", Err(Mismatch))],
        );
        let explanation = match verdict(&[write(), read(51, 60, 1, "a")]) {
            Verdict::NotLinearizable { explanation, .. } => explanation,
            other => panic!("expected a violation, got {other:?}"),
        };
        assert!(explanation.contains("#1 client 0 [51..60] Read"), "{explanation}");
    }

    #[test]
    fn unknown_outcomes_may_or_may_not_take_effect_but_only_after_their_call() {
        // Reads at 100..110 keep the unknown Cas relevant (it is called before a known return).
        let (seen_new, seen_old) = (read(100, 110, 2, "b"), read(100, 110, 1, "a"));
        assert_case(
            "timed out, observed",
            true,
            vec![unknown_cas(0, None, 1, "b"), seen_new.clone()],
        );
        assert_case(
            "timed out, unobserved",
            true,
            vec![unknown_cas(0, None, 1, "b"), seen_old],
        );
        // A 5xx at t=10 may still take effect later, after a read of the old value.
        let late = vec![unknown_cas(0, Some(10), 1, "b"), read(50, 60, 1, "a"), seen_new.clone()];
        assert_case("applied after its 5xx", true, late);
        let never = vec![
            unknown_cas(0, Some(10), 1, "b"),
            read(20, 30, 1, "a"),
            cas(40, 50, 1, "c", Ok(2)),
            read(60, 70, 2, "c"),
        ];
        assert_case("never applied", true, never);
        let after_call = vec![read(0, 10, 1, "a"), unknown_cas(20, None, 1, "b"), seen_new.clone()];
        assert_case("applied after its call", true, after_call);
        let before_call = vec![read(0, 10, 2, "b"), unknown_cas(20, None, 1, "b"), seen_new];
        assert_case("seen before its call", false, before_call);
        assert_case(
            "other title",
            false,
            vec![unknown_cas(0, None, 1, "b"), read(100, 110, 2, "z")],
        );
        assert_case(
            "other version",
            false,
            vec![unknown_cas(0, None, 7, "b"), read(100, 110, 8, "b")],
        );
    }

    #[test]
    fn keys_are_checked_independently() {
        let mut history = vec![
            cas(0, 10, 1, "b", Ok(2)),
            read_of("other", 20, 30, 1, "a"), // "other" was never written
            read(20, 30, 2, "b"),
        ];
        assert_eq!(verdict(&history), Verdict::Linearizable);
        history.push(read_of("other", 5, 8, 1, "a"));
        history.push(cas(40, 50, 2, "c", Ok(3)));
        history.push(read_of("bad", 60, 70, 9, "never"));
        history.push(read(60, 70, 2, "b")); // stale
        match verdict(&history) {
            Verdict::NotLinearizable {
                key: "bad",
                explanation,
            } => {
                assert!(explanation.starts_with("key \"bad\""), "{explanation}");
            }
            other => panic!("expected a violation on \"bad\", got {other:?}"),
        }
        history.retain(|op| op.key != "bad");
        assert!(matches!(verdict(&history), Verdict::NotLinearizable { key: "k", .. }));
    }

    #[test]
    fn an_exhausted_budget_is_undecided() {
        let history = [cas(0, 10, 1, "b", Ok(2)), read(1, 9, 1, "a"), read(2, 8, 1, "a")];
        let undecided = Verdict::Undecided { key: "k" };
        let model = CasRegister::starting_at(1, "a");
        assert_eq!(check(&model, &history, 1), undecided);
        assert_eq!(verdict(&history), Verdict::Linearizable);
        // A violation on another key wins over an exhausted budget.
        let violation = [history.as_slice(), &[read_of("z", 0, 1, 7, "z")]].concat();
        assert!(matches!(
            check(&model, &violation, 1),
            Verdict::NotLinearizable { key: "z", .. }
        ));
    }

    /// xorshift64: a tiny deterministic generator, enough for test histories.
    struct XorShift(u64);

    impl XorShift {
        fn below(&mut self, bound: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % bound
        }
    }

    /// A history of `clients` sequential clients that is linearizable by construction: each
    /// operation takes effect at a random instant of its interval, outputs follow that order.
    /// Also returns, per version, its title and the return time of the known Cas creating it.
    fn generate(seed: u64, clients: usize, per_client: usize) -> (Vec<Op>, Vec<(String, Option<u64>)>) {
        let mut rng = XorShift(seed);
        let mut planned = Vec::new(); // (linearization point, client, call, ret)
        for client in 0..clients {
            let mut time = rng.below(100);
            for _ in 0..per_client {
                let call = time + rng.below(50);
                let ret = call + 1 + rng.below(400);
                planned.push((call + rng.below(ret - call + 1), client, call, ret));
                time = ret;
            }
        }
        planned.sort_unstable();
        let mut versions = vec![(String::new(), None), ("t0".to_owned(), None)];
        let mut history = Vec::new();
        for (n, &(_, client, call, ret)) in planned.iter().enumerate() {
            let current = (versions.len() - 1) as u64;
            let unknown = rng.below(30) == 0;
            let mut op = if rng.below(2) == 0 {
                let seen = Some((current, versions[versions.len() - 1].0.clone()));
                Operation::completed(client, "k", RegisterOp::Read, RegisterResult::Read(seen), call, ret)
            } else {
                // Mostly the current version; sometimes the one before or after (a mismatch).
                let skew = if rng.below(4) == 0 { rng.below(3) } else { 1 };
                let expect = current + skew - 1;
                let title = format!("t{n}");
                let took_effect = !unknown || rng.below(2) == 0;
                let result = if expect == current && took_effect {
                    versions.push((title.clone(), (!unknown).then_some(ret)));
                    Ok(current + 1)
                } else {
                    Err(Mismatch)
                };
                let input = RegisterOp::Cas { expect, title };
                Operation::completed(client, "k", input, RegisterResult::Cas(result), call, ret)
            };
            if unknown {
                op.output = None;
                op.ret = op.ret.filter(|_| rng.below(2) == 0);
            }
            history.push(op);
        }
        history.sort_by_key(|op| op.call);
        (history, versions)
    }

    #[test]
    fn generated_linearizable_history_is_accepted_and_a_stale_read_in_it_rejected() {
        for seed in [0x9E37_79B9_7F4A_7C15, 42, 7] {
            let (mut history, versions) = generate(seed, 8, 250);
            assert_eq!(history.len(), 2000);
            let model = CasRegister::starting_at(1, "t0");
            assert_eq!(check(&model, &history, BUDGET), Verdict::Linearizable, "seed {seed}");

            // Corrupt a read in the second half: make it see a version that a completed Cas
            // had already replaced before the read was called.
            let target = (history.len() / 2..history.len())
                .find_map(|index| {
                    let op = &history[index];
                    let Some(RegisterResult::Read(Some((seen, _)))) = &op.output else {
                        return None;
                    };
                    (1..*seen)
                        .rev()
                        .find(|&old| versions[old as usize + 1].1.is_some_and(|replaced| replaced < op.call))
                        .map(|old| (index, old))
                })
                .expect("a read to corrupt");
            let (index, old) = target;
            let stale = Some((old, versions[old as usize].0.clone()));
            history[index].output = Some(RegisterResult::Read(stale));
            match check(&model, &history, BUDGET) {
                Verdict::NotLinearizable { key: "k", explanation } => {
                    assert!(explanation.contains(&format!("#{index} ")), "{explanation}");
                }
                other => panic!("seed {seed}: expected a violation, got {other:?}"),
            }
        }
    }
}
