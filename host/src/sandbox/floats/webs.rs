//! Webs: each float or vector local split into the groups of writes that can reach a common
//! read. Compilers reuse one local for values that never meet (LLVM colours its virtual
//! registers into as few locals as it can): a local that holds a loaded value in one loop and
//! a computed one in another would otherwise be exact everywhere, and every arithmetic value
//! written to it canonicalised. With webs, each group has a class of its own.
//!
//! Reaching definitions over the structured control flow: one walk over the body with a
//! stack of frames (a block's or `if`'s end collects the branches to it, a loop's head the
//! branches back to it), repeated until the loop heads stop growing. Every read joins the
//! writes that reach it into one web (union-find). A function that uses control flow this
//! module does not model (exceptions, stack switching, branches on references), or is too
//! large for the walk's bound, keeps one web per local, as before.

use std::collections::HashMap;

use wasmparser::{Operator, ValType};

/// The webs of one function body.
pub(super) struct Webs {
    /// The web of each `local.get`, `local.set` and `local.tee`, by operator index.
    of_step: Vec<Option<u32>>,
    /// The web holding each local's value on entry (a parameter, or its zero).
    entry: Vec<u32>,
    /// The local each web belongs to (each web has one), by web.
    local_of: Vec<u32>,
}

impl Webs {
    /// The web the local operator at `step` reads or writes.
    pub(super) fn of(&self, step: usize, local: u32) -> usize {
        self.of_step[step].unwrap_or(self.entry[local as usize]) as usize
    }

    /// For each web, the local whose entry value it holds, if any.
    pub(super) fn entries(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.entry.iter().enumerate().map(|(local, web)| (*web as usize, local as u32))
    }

    /// The local each web belongs to, by web.
    pub(super) fn locals(&self) -> &[u32] {
        &self.local_of
    }

    /// Webs from the web of each local operator and of each local's entry value.
    fn new(ops: &[&Operator<'_>], of_step: Vec<Option<u32>>, entry: Vec<u32>, count: usize) -> Self {
        let mut local_of = vec![0; count];
        for (local, web) in entry.iter().enumerate() {
            local_of[*web as usize] = local as u32;
        }
        for (op, web) in ops.iter().zip(&of_step) {
            if let (Some(local), Some(web)) = (local_index(op), web) {
                local_of[*web as usize] = local;
            }
        }
        Webs { of_step, entry, local_of }
    }
}

/// The most (tracked locals × control operators) the walk takes on; past it, one web per local.
const MAX_WORK: usize = 4_000_000;
/// The most walks before giving up on the loop heads settling (they settle in a few).
const MAX_WALKS: usize = 64;

/// Splits the locals of a body into webs.
pub(super) fn webs(ops: &[&Operator<'_>], local_types: &[Option<ValType>]) -> Webs {
    let tracked: Vec<Option<usize>> = {
        let mut next = 0;
        local_types
            .iter()
            .map(|ty| {
                matches!(ty, Some(ValType::F32 | ValType::F64 | ValType::V128)).then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect()
    };
    let count = tracked.iter().flatten().count();
    let control = ops.iter().filter(|op| is_control(op)).count();
    let modelled = ops.iter().all(|op| !is_unmodelled(op));
    if count == 0 || !modelled || count.saturating_mul(control) > MAX_WORK {
        return one_per_local(ops, local_types.len());
    }
    match reaching(ops, local_types.len(), &tracked) {
        Some(reads) => join(ops, local_types.len(), &tracked, &reads),
        None => one_per_local(ops, local_types.len()),
    }
}

/// One web per local: every operator on a local is in that local's web.
fn one_per_local(ops: &[&Operator<'_>], locals: usize) -> Webs {
    let of_step = ops.iter().map(|op| local_index(op)).collect();
    Webs::new(ops, of_step, (0..locals as u32).collect(), locals)
}

/// The definitions reaching one point, per tracked local (sorted); `None` when unreachable.
type State = Option<Vec<Vec<u32>>>;

fn merge_into(into: &mut State, from: &State) -> bool {
    let Some(from) = from else { return false };
    let Some(into) = into else {
        *into = Some(from.clone());
        return true;
    };
    let mut grew = false;
    for (a, b) in into.iter_mut().zip(from) {
        for def in b {
            if let Err(at) = a.binary_search(def) {
                a.insert(at, *def);
                grew = true;
            }
        }
    }
    grew
}

enum Frame {
    Block { end: State },
    Loop { head: usize },
    If { end: State, otherwise: Option<State> },
}

/// Definitions are numbered: local `l`'s entry value is `l`, the write at operator `i` is
/// `locals + i`. Returns, for each operator that reads a tracked local, the definitions
/// reaching it; `None` if the loop heads do not settle.
fn reaching(
    ops: &[&Operator<'_>],
    locals: usize,
    tracked: &[Option<usize>],
) -> Option<HashMap<usize, Vec<u32>>> {
    let entry: Vec<Vec<u32>> =
        tracked.iter().enumerate().filter_map(|(local, t)| t.map(|_| vec![local as u32])).collect();
    let mut heads: HashMap<usize, State> = HashMap::new();
    for _ in 0..MAX_WALKS {
        let mut grew = false;
        let mut reads: HashMap<usize, Vec<u32>> = HashMap::new();
        let mut state: State = Some(entry.clone());
        let mut frames: Vec<Frame> = Vec::new();
        let branch =
            |frames: &mut Vec<Frame>, heads: &mut HashMap<usize, State>, depth: u32, state: &State| {
                let Some(at) = frames.len().checked_sub(depth as usize + 1) else { return false };
                match &mut frames[at] {
                    Frame::Block { end } | Frame::If { end, .. } => {
                        merge_into(end, state);
                        false
                    }
                    Frame::Loop { head } => merge_into(heads.entry(*head).or_insert(None), state),
                }
            };
        for (i, op) in ops.iter().enumerate() {
            use Operator as O;
            match op {
                O::Block { .. } => frames.push(Frame::Block { end: None }),
                O::Loop { .. } => {
                    let head = heads.entry(i).or_insert(None);
                    merge_into(head, &state);
                    state = head.clone();
                    frames.push(Frame::Loop { head: i });
                }
                O::If { .. } => frames.push(Frame::If { end: None, otherwise: Some(state.clone()) }),
                O::Else => {
                    if let Some(Frame::If { end, otherwise }) = frames.last_mut() {
                        merge_into(end, &state);
                        state = otherwise.take().unwrap_or(None);
                    }
                }
                O::End => match frames.pop() {
                    Some(Frame::Block { end }) => {
                        merge_into(&mut state, &end);
                    }
                    Some(Frame::If { end, otherwise }) => {
                        merge_into(&mut state, &end);
                        if let Some(otherwise) = otherwise {
                            merge_into(&mut state, &otherwise);
                        }
                    }
                    Some(Frame::Loop { .. }) | None => {}
                },
                O::Br { relative_depth } => {
                    grew |= branch(&mut frames, &mut heads, *relative_depth, &state);
                    state = None;
                }
                O::BrIf { relative_depth } => {
                    grew |= branch(&mut frames, &mut heads, *relative_depth, &state)
                }
                O::BrTable { targets } => {
                    for depth in targets.targets().chain(std::iter::once(Ok(targets.default()))) {
                        grew |= branch(&mut frames, &mut heads, depth.ok()?, &state);
                    }
                    state = None;
                }
                O::Return
                | O::Unreachable
                | O::ReturnCall { .. }
                | O::ReturnCallIndirect { .. }
                | O::ReturnCallRef { .. } => state = None,
                O::LocalSet { local_index } | O::LocalTee { local_index } => {
                    if let (Some(t), Some(defs)) = (tracked[*local_index as usize], state.as_mut()) {
                        defs[t] = vec![(locals + i) as u32];
                    }
                }
                O::LocalGet { local_index } => {
                    if let (Some(t), Some(defs)) = (tracked[*local_index as usize], state.as_ref()) {
                        reads.insert(i, defs[t].clone());
                    }
                }
                _ => {}
            }
        }
        if !grew {
            return Some(reads);
        }
    }
    None
}

/// Joins the definitions reaching each read into webs, numbered densely.
fn join(
    ops: &[&Operator<'_>],
    locals: usize,
    tracked: &[Option<usize>],
    reads: &HashMap<usize, Vec<u32>>,
) -> Webs {
    let mut parent: Vec<u32> = (0..(locals + ops.len()) as u32).collect();
    fn find(parent: &mut [u32], mut x: u32) -> u32 {
        while parent[x as usize] != x {
            parent[x as usize] = parent[parent[x as usize] as usize];
            x = parent[x as usize];
        }
        x
    }
    for defs in reads.values() {
        if let Some((first, rest)) = defs.split_first() {
            let root = find(&mut parent, *first);
            for def in rest {
                let other = find(&mut parent, *def);
                parent[other as usize] = root;
            }
        }
    }
    let mut dense: HashMap<u32, u32> = HashMap::new();
    let mut web = |parent: &mut Vec<u32>, def: u32| {
        let root = find(parent, def);
        let next = dense.len() as u32;
        *dense.entry(root).or_insert(next)
    };
    let entry: Vec<u32> = (0..locals as u32).map(|l| web(&mut parent, l)).collect();
    let of_step = ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let local = local_index(op)?;
            if tracked[local as usize].is_none() {
                return Some(entry[local as usize]);
            }
            Some(match op {
                Operator::LocalGet { .. } => match reads.get(&i).and_then(|defs| defs.first()) {
                    Some(def) => web(&mut parent, *def),
                    // Unreachable: never runs, any web of the local will do.
                    None => entry[local as usize],
                },
                _ => web(&mut parent, (locals + i) as u32),
            })
        })
        .collect();
    let count = dense.len();
    Webs::new(ops, of_step, entry, count)
}

fn local_index(op: &Operator<'_>) -> Option<u32> {
    match op {
        Operator::LocalGet { local_index }
        | Operator::LocalSet { local_index }
        | Operator::LocalTee { local_index } => Some(*local_index),
        _ => None,
    }
}

fn is_control(op: &Operator<'_>) -> bool {
    use Operator as O;
    matches!(
        op,
        O::Block { .. }
            | O::Loop { .. }
            | O::If { .. }
            | O::Else
            | O::End
            | O::Br { .. }
            | O::BrIf { .. }
            | O::BrTable { .. }
    )
}

/// Control flow the walk does not model: exceptions, stack switching, branches on
/// references.
fn is_unmodelled(op: &Operator<'_>) -> bool {
    use Operator as O;
    matches!(
        op,
        O::Try { .. }
            | O::Catch { .. }
            | O::CatchAll
            | O::Delegate { .. }
            | O::Throw { .. }
            | O::Rethrow { .. }
            | O::TryTable { .. }
            | O::ThrowRef
            | O::BrOnNull { .. }
            | O::BrOnNonNull { .. }
            | O::BrOnCast { .. }
            | O::BrOnCastFail { .. }
            | O::Resume { .. }
            | O::ResumeThrow { .. }
            | O::Suspend { .. }
            | O::Switch { .. }
    )
}
