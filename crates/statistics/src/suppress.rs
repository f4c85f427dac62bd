//! The minimum publication rule and secondary suppression of the sex/age tables ③④⑦⑨.
//!
//! Primary: a count of 1 to 4 is shown as `*`. Secondary: every hidden cell must keep more than
//! one possible value given everything published — each week's row totals (the daily series),
//! the ALL area (the sum of the prefectures), and the week-to-week link of the cumulative tables
//! (④ at week w minus ④ at week w−1 is ③ at week w; ⑨ only grows by deaths). We treat every row
//! total as public, which is stronger than the truth (unknown sex or age is not in the tables).
//!
//! Protection is built from *blocks*: a rectangle of two areas × two columns whose four cells
//! move by +d, −d, −d, +d (rows and the ALL area keep their sums), held over an interval of
//! weeks. In a cumulative table the move enters the underlying weekly counts at the interval's
//! first week and leaves at the week after its last, so the tables outside the interval do not
//! change; for ③/④ the two ③ cells where it enters and leaves are hidden too. For each primary
//! cell not already moved by an earlier block, the block that hides the fewest extra cells (then
//! the smallest values) is chosen, among those whose move keeps every count non-negative in at
//! least one direction. The move is then a second table consistent with everything published in
//! which the cell differs: that is what [`crate::audit`] checks, independently.

use crate::compute::Indicators;
use crate::model::{AREAS, COLUMNS, Suppression, WeeklySeries, WeeklyTable};

/// How the cells of a table are linked across weeks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// ⑦: a stock; weeks are independent.
    Stock,
    /// ⑨: cumulative, with the weekly increments unpublished.
    Cumulative,
    /// ③ with its cumulative ④.
    FlowWithCumulative,
}

/// Counts of one suppression run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    pub primary: usize,
    pub secondary: usize,
    /// Primary cells for which no block was found (none at any scale we have run; the auditor
    /// would report them).
    pub unprotected: usize,
}

/// A candidate block: rows `a` (the target's) and `b`, columns `c` (the target's) and `e`,
/// weeks `w1..=w2`, direction `d`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Block {
    pub a: usize,
    pub b: usize,
    pub c: usize,
    pub e: usize,
    pub w1: usize,
    pub w2: usize,
    pub d: i64,
}

impl Block {
    /// The four cells with their sign. When one row is ALL, both rows move alike (ALL follows
    /// the prefecture); otherwise they move oppositely (ALL is unchanged).
    pub fn corners(&self) -> [(usize, usize, i64); 4] {
        let other = if self.a == 0 || self.b == 0 { 1 } else { -1 };
        [
            (self.a, self.c, 1),
            (self.a, self.e, -1),
            (self.b, self.c, other),
            (self.b, self.e, -other),
        ]
    }
}

/// The underlying weekly count of a cumulative table at week `w` (the increment).
fn increment(t: &WeeklyTable, w: usize, area: usize, col: usize) -> Option<i64> {
    let now = t.get(w, area, col).value?;
    if w == 0 {
        return Some(now);
    }
    Some(now - t.get(w - 1, area, col).value.unwrap_or(0))
}

/// The tables a family's block touches: (cumulative or stock table, flow table).
struct Tables<'a> {
    family: Family,
    main: &'a WeeklyTable,
    flow: Option<&'a WeeklyTable>,
    /// [`Run`]s of every (area, column) of the main table.
    runs: &'a [Vec<Run>],
}

impl Tables<'_> {
    /// The cells a block changes: (is the flow table, week, area, column). `None` if the block
    /// touches a cell that is not published at all or leaves the table.
    fn changed(&self, b: &Block) -> Vec<(bool, usize, usize, usize)> {
        let weeks = self.main.weeks;
        let mut out = Vec::new();
        for (area, col, _) in b.corners() {
            for w in b.w1..=b.w2 {
                out.push((false, w, area, col));
            }
            if self.family == Family::FlowWithCumulative {
                out.push((true, b.w1, area, col));
                if b.w2 + 1 < weeks {
                    out.push((true, b.w2 + 1, area, col));
                }
            }
        }
        out
    }

    /// Whether the block's move keeps every underlying count non-negative.
    fn feasible(&self, b: &Block) -> bool {
        let weeks = self.main.weeks;
        for (area, col, sign) in b.corners() {
            // An ALL cell follows the prefectures; one not published at all constrains nothing.
            if area == 0 {
                continue;
            }
            let delta = b.d * sign;
            let ok = match self.family {
                Family::Stock => self.main.get(b.w1, area, col).value.is_some_and(|v| v + delta >= 0),
                Family::Cumulative => {
                    increment(self.main, b.w1, area, col).is_some_and(|v| v + delta >= 0)
                        && (b.w2 + 1 >= weeks
                            || increment(self.main, b.w2 + 1, area, col).is_some_and(|v| v - delta >= 0))
                }
                Family::FlowWithCumulative => {
                    let flow = self.flow.expect("flow table");
                    flow.get(b.w1, area, col).value.is_some_and(|v| v + delta >= 0)
                        && (b.w2 + 1 >= weeks || flow.get(b.w2 + 1, area, col).value.is_some_and(|v| v - delta >= 0))
                }
            };
            if !ok {
                return false;
            }
        }
        true
    }
}

/// Applies the rule to ③④⑦⑨ in place.
pub fn suppress(ind: &mut Indicators) -> Outcome {
    let mut outcome = Outcome::default();
    // Primary cells first, in every table, so that blocks can reuse them.
    for s in [
        WeeklySeries::NewBySexAge,
        WeeklySeries::CumulativeBySexAge,
        WeeklySeries::SevereBySexAge,
        WeeklySeries::DeathsBySexAge,
    ] {
        for cell in &mut ind.weekly[s.index()].cells {
            if cell.value.is_some_and(|v| (1..=4).contains(&v)) {
                cell.suppression = Suppression::Primary;
                outcome.primary += 1;
            }
        }
    }
    let mut unprotected = 0;
    unprotected += protect(ind, Family::Stock, WeeklySeries::SevereBySexAge, None);
    unprotected += protect(ind, Family::Cumulative, WeeklySeries::DeathsBySexAge, None);
    unprotected += protect(
        ind,
        Family::FlowWithCumulative,
        WeeklySeries::CumulativeBySexAge,
        Some(WeeklySeries::NewBySexAge),
    );
    outcome.unprotected = unprotected;
    outcome.secondary = ind
        .weekly
        .iter()
        .flat_map(|t| &t.cells)
        .filter(|c| c.suppression == Suppression::Secondary)
        .count();
    outcome
}

/// Protects every primary cell of one family; returns how many could not be.
fn protect(ind: &mut Indicators, family: Family, main_s: WeeklySeries, flow_s: Option<WeeklySeries>) -> usize {
    let weeks = ind.weekly[main_s.index()].weeks;
    let size = weeks * AREAS * COLUMNS;
    // Cells already moved by a chosen block: (main, flow).
    let mut covered = (vec![false; size], vec![false; size]);
    let mut unprotected = 0;
    let mut targets: Vec<(bool, usize, usize, usize)> = Vec::new();
    for w in 0..weeks {
        for area in 0..AREAS {
            for col in 0..COLUMNS {
                if ind.weekly[main_s.index()].get(w, area, col).suppression == Suppression::Primary {
                    targets.push((false, w, area, col));
                }
                if let Some(f) = flow_s
                    && ind.weekly[f.index()].get(w, area, col).suppression == Suppression::Primary
                {
                    targets.push((true, w, area, col));
                }
            }
        }
    }
    let mut runs: Vec<Vec<Run>> = (0..AREAS * COLUMNS)
        .map(|i| runs_of(&ind.weekly[main_s.index()], i / COLUMNS, i % COLUMNS))
        .collect();
    for (is_flow, w, area, col) in targets {
        let at = ind.weekly[main_s.index()].at(w, area, col);
        if (if is_flow { &covered.1 } else { &covered.0 })[at] {
            continue;
        }
        let tables = Tables {
            family,
            main: &ind.weekly[main_s.index()],
            flow: flow_s.map(|f| &ind.weekly[f.index()]),
            runs: &runs,
        };
        let Some(block) = best_block(&tables, is_flow, w, area, col, false)
            .or_else(|| best_block(&tables, is_flow, w, area, col, true))
        else {
            unprotected += 1;
            continue;
        };
        let changed = tables.changed(&block);
        for &(in_flow, cw, ca, cc) in &changed {
            let s = if in_flow { flow_s.expect("flow") } else { main_s };
            let t = &mut ind.weekly[s.index()];
            let i = t.at(cw, ca, cc);
            // An unpublished cell stays unpublished (empty, not `*`).
            if t.cells[i].suppression == Suppression::Shown && t.cells[i].value.is_some() {
                t.cells[i].suppression = Suppression::Secondary;
            }
            if in_flow {
                covered.1[i] = true;
            } else {
                covered.0[i] = true;
            }
        }
        for (ca, cc, _) in block.corners() {
            runs[ca * COLUMNS + cc] = runs_of(&ind.weekly[main_s.index()], ca, cc);
        }
    }
    unprotected
}

/// The cheapest feasible block moving the target cell. With `wide` every area is a candidate
/// partner; otherwise the eight with the smallest values in the target's column, and ALL.
fn best_block(t: &Tables<'_>, is_flow: bool, w: usize, area: usize, col: usize, wide: bool) -> Option<Block> {
    let weeks = t.main.weeks;
    let target_table = if is_flow { t.flow.expect("flow") } else { t.main };
    // Intervals of weeks that move the target.
    let mut intervals: Vec<(usize, usize)> = Vec::new();
    match (t.family, is_flow) {
        (Family::Stock, _) => intervals.push((w, w)),
        (_, true) => {
            // A ③ cell moves where a block enters (w1 = w) or leaves (w2 + 1 = w).
            intervals.push((w, w));
            if w > 0 {
                intervals.push((w - 1, w - 1));
            }
            // Or enter and never leave: the cumulative cells stay hidden to the end.
            if w + 1 < weeks {
                intervals.push((w, weeks - 1));
            }
        }
        (_, false) => {
            // A cumulative cell: cover the run of primary weeks around it, then to the end.
            let hidden = |x: usize| target_table.get(x, area, col).suppression == Suppression::Primary;
            let mut r1 = w;
            while r1 > 0 && hidden(r1 - 1) {
                r1 -= 1;
            }
            let mut r2 = w;
            while r2 + 1 < weeks && hidden(r2 + 1) {
                r2 += 1;
            }
            intervals.push((r1, r2));
            if r2 + 1 < weeks {
                intervals.push((r1, weeks - 1));
            }
            if r1 < w {
                intervals.push((w, r2));
            }
        }
    }
    let mut partners: Vec<usize> = (0..AREAS).filter(|b| *b != area).collect();
    if !wide {
        partners.sort_by_key(|b| {
            let v = target_table.get(w, *b, col).value.unwrap_or(i64::MAX);
            (*b != 0 && *b != area, v)
        });
        // ALL first when it is a candidate, then the smallest; ALL is tried last among equals
        // by cost below, since hiding national cells costs readers most.
        partners.retain(|b| *b != 0);
        partners.truncate(8);
        if area != 0 {
            partners.push(0);
        }
    }
    let mut best: Option<(Block, (usize, i64, bool))> = None;
    for &b in &partners {
        for e in (0..COLUMNS).filter(|e| *e != col) {
            let corners = [(area, col), (area, e), (b, col), (b, e)];
            for &(w1, w2) in &intervals {
                // What the block would hide: the main table over the interval (from the running
                // sums) and, for ③/④, the ③ cells where the move enters and leaves.
                let mut cost = 0usize;
                let mut value_lost = 0i64;
                let mut valid = true;
                for &(ca, cc) in &corners {
                    let run = &t.runs[ca * COLUMNS + cc];
                    let (lo, hi) = (run[w1], run[w2 + 1]);
                    // A prefecture cell must be published to move; an ALL cell that is not
                    // published (while some prefecture is before its switch) moves unseen.
                    if ca != 0 && hi.none != lo.none {
                        valid = false;
                        break;
                    }
                    cost += (hi.shown - lo.shown) as usize;
                    value_lost += hi.value - lo.value;
                    if t.family == Family::FlowWithCumulative {
                        let flow = t.flow.expect("flow");
                        for fw in [Some(w1), (w2 + 1 < weeks).then_some(w2 + 1)].into_iter().flatten() {
                            let cell = flow.get(fw, ca, cc);
                            match cell.value {
                                None if ca != 0 => valid = false,
                                None => {}
                                Some(v) if cell.suppression == Suppression::Shown => {
                                    cost += 1;
                                    value_lost += v;
                                }
                                Some(_) => {}
                            }
                        }
                    }
                }
                if !valid {
                    continue;
                }
                let key = (cost, value_lost, b == 0);
                if let Some((_, k)) = &best
                    && (key.0, key.2, key.1) >= (k.0, k.2, k.1)
                {
                    continue;
                }
                for d in [-1, 1] {
                    let block = Block {
                        a: area,
                        b,
                        c: col,
                        e,
                        w1,
                        w2,
                        d,
                    };
                    if t.feasible(&block) {
                        best = Some((block, key));
                        break;
                    }
                }
            }
        }
    }
    best.map(|(b, _)| b)
}

/// Running sums over the weeks of one cell of the main table: shown cells, their values, and
/// unpublished cells, for the weeks before each index.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    shown: u32,
    value: i64,
    none: u32,
}

fn runs_of(t: &WeeklyTable, area: usize, col: usize) -> Vec<Run> {
    let mut out = Vec::with_capacity(t.weeks + 1);
    let mut acc = Run::default();
    out.push(acc);
    for w in 0..t.weeks {
        let cell = t.get(w, area, col);
        match cell.value {
            None => acc.none += 1,
            Some(v) if cell.suppression == Suppression::Shown => {
                acc.shown += 1;
                acc.value += v;
            }
            Some(_) => {}
        }
        out.push(acc);
    }
    out
}
