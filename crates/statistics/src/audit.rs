//! The suppression auditor: proves that no hidden cell of ③④⑦⑨ can be derived exactly from
//! what a publication shows.
//!
//! For each hidden cell it searches for a witness: a change to the underlying prefecture-level
//! weekly counts (new positives, deaths, severe stock) that keeps every count non-negative and
//! leaves every published figure unchanged — every shown cell, every row total, the ALL area
//! (recomputed from the prefectures), and the cumulative tables (recomputed by summing the
//! weekly counts over all later weeks) — while changing the hidden cell. Such a witness is a
//! second dataset consistent with the publication in which the cell has another value, so the
//! cell keeps a range of at least two values. Only the publication's cells and the definitions
//! of the tables are used here, not the suppressor's choices.

use std::collections::HashMap;

use crate::compute::Indicators;
use crate::model::{AREAS, COLUMNS, WeeklySeries, WeeklyTable};
use crate::suppress::Family;

/// The auditor's findings.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AuditReport {
    pub hidden: usize,
    pub proven: usize,
    /// Hidden cells without a witness: (series, week, area, column).
    pub unproven: Vec<(&'static str, usize, usize, usize)>,
}

impl AuditReport {
    pub fn passed(&self) -> bool {
        self.unproven.is_empty() && self.proven == self.hidden
    }
}

/// Audits ③④⑦⑨ of computed and suppressed indicators.
pub fn audit(ind: &Indicators) -> AuditReport {
    let mut report = AuditReport::default();
    let t = |s: WeeklySeries| &ind.weekly[s.index()];
    let families: [(Family, &WeeklyTable, Option<&WeeklyTable>, &'static str); 3] = [
        (
            Family::Stock,
            t(WeeklySeries::SevereBySexAge),
            None,
            "severe_by_sex_age",
        ),
        (
            Family::Cumulative,
            t(WeeklySeries::DeathsBySexAge),
            None,
            "deaths_by_sex_age",
        ),
        (
            Family::FlowWithCumulative,
            t(WeeklySeries::CumulativeBySexAge),
            Some(t(WeeklySeries::NewBySexAge)),
            "cumulative_by_sex_age",
        ),
    ];
    for (family, main, flow, name) in families {
        let checker = Checker { family, main, flow };
        for (in_flow, table) in [(false, Some(main)), (true, flow)] {
            let Some(table) = table else { continue };
            for w in 0..table.weeks {
                for area in 0..AREAS {
                    for col in 0..COLUMNS {
                        if !table.get(w, area, col).suppression.is_hidden() {
                            continue;
                        }
                        report.hidden += 1;
                        if checker.witness(in_flow, w, area, col) {
                            report.proven += 1;
                        } else {
                            let series = if in_flow { "new_by_sex_age" } else { name };
                            report.unproven.push((series, w, area, col));
                        }
                    }
                }
            }
        }
    }
    report
}

struct Checker<'a> {
    family: Family,
    main: &'a WeeklyTable,
    flow: Option<&'a WeeklyTable>,
}

impl Checker<'_> {
    fn hidden(&self, in_flow: bool, w: usize, area: usize, col: usize) -> bool {
        let t = if in_flow { self.flow } else { Some(self.main) };
        t.is_some_and(|t| {
            let cell = t.get(w, area, col);
            // An ALL cell that is not published at all is as unknown as a hidden one.
            cell.suppression.is_hidden() || (area == 0 && cell.value.is_none())
        })
    }

    /// Searches rectangles whose corners are hidden at the target's week, over the intervals
    /// they stay hidden.
    fn witness(&self, in_flow: bool, w: usize, area: usize, col: usize) -> bool {
        let weeks = self.main.weeks;
        for b in (0..AREAS).filter(|b| *b != area) {
            if !self.hidden(in_flow, w, b, col) {
                continue;
            }
            for e in (0..COLUMNS).filter(|e| *e != col) {
                let corners = [(area, col), (area, e), (b, col), (b, e)];
                if !corners.iter().all(|(x, y)| self.hidden(in_flow, w, *x, *y)) {
                    continue;
                }
                let main_hidden = |x: usize| corners.iter().all(|(p, q)| self.hidden(false, x, *p, *q));
                let mut intervals: Vec<(usize, usize)> = Vec::new();
                match (self.family, in_flow) {
                    (Family::Stock, _) => intervals.push((w, w)),
                    (_, false) => {
                        let (mut s, mut t) = (w, w);
                        while s > 0 && main_hidden(s - 1) {
                            s -= 1;
                        }
                        while t + 1 < weeks && main_hidden(t + 1) {
                            t += 1;
                        }
                        for w1 in (s..=w).rev() {
                            for w2 in w..=t {
                                intervals.push((w1, w2));
                            }
                        }
                    }
                    (_, true) => {
                        // Enter at w: the cumulative cells from w on must be hidden.
                        let mut t = w;
                        while t < weeks && main_hidden(t) {
                            intervals.push((w, t));
                            t += 1;
                        }
                        // Leave at w: the cumulative cells before w must be hidden.
                        let mut s = w;
                        while s > 0 && main_hidden(s - 1) {
                            s -= 1;
                            intervals.push((s, w - 1));
                        }
                    }
                }
                for (w1, w2) in intervals {
                    for d in [-1i64, 1] {
                        if self.plausible(&corners, w1, w2, d)
                            && self.verify(&corners, w1, w2, d, (in_flow, w, area, col))
                        {
                            return true;
                        }
                    }
                }
            }
        }
        false
    }

    /// The underlying count a move enters or leaves at week `w`.
    fn underlying(&self, w: usize, area: usize, col: usize) -> Option<i64> {
        match self.family {
            Family::Stock => self.main.get(w, area, col).value,
            Family::FlowWithCumulative => self.flow.and_then(|f| f.get(w, area, col).value),
            Family::Cumulative => {
                let now = self.main.get(w, area, col).value?;
                Some(
                    now - if w == 0 {
                        0
                    } else {
                        self.main.get(w - 1, area, col).value.unwrap_or(0)
                    },
                )
            }
        }
    }

    /// A quick necessary condition (the prefecture counts where the move enters and leaves stay
    /// non-negative), so that [`Checker::verify`] runs only on candidates that can pass.
    fn plausible(&self, corners: &[(usize, usize); 4], w1: usize, w2: usize, d: i64) -> bool {
        let (a, b) = (corners[0].0, corners[3].0);
        let other = if a == 0 || b == 0 { 1 } else { -1 };
        let weeks = self.main.weeks;
        [
            (corners[0], 1),
            (corners[1], -1),
            (corners[2], other),
            (corners[3], -other),
        ]
        .iter()
        .filter(|((area, _), _)| *area != 0)
        .all(|&((area, col), sign)| {
            let delta = sign * d;
            self.underlying(w1, area, col).is_some_and(|v| v + delta >= 0)
                && (self.family == Family::Stock
                    || w2 + 1 >= weeks
                    || self.underlying(w2 + 1, area, col).is_some_and(|v| v - delta >= 0))
        })
    }

    /// Builds the change to the underlying prefecture-level counts that the rectangle implies,
    /// derives every published cell from it, and checks the conditions of a witness.
    fn verify(
        &self,
        corners: &[(usize, usize); 4],
        w1: usize,
        w2: usize,
        d: i64,
        target: (bool, usize, usize, usize),
    ) -> bool {
        let weeks = self.main.weeks;
        // Signs of the corners: the target's row +,−; the other row −,+ (both rows the same way
        // when one of them is ALL, which then follows the prefecture).
        let (a, c) = corners[0];
        let (b, e) = corners[3];
        let other = if a == 0 || b == 0 { 1 } else { -1 };
        let mut base: HashMap<(usize, usize), i64> = HashMap::new();
        for (area, col, sign) in [(a, c, 1), (a, e, -1), (b, c, other), (b, e, -other)] {
            if area != 0 {
                *base.entry((area, col)).or_default() += sign * d;
            }
        }
        // Underlying weekly changes: the move enters at w1 and, except for a stock, leaves
        // after w2.
        let mut underlying: HashMap<(usize, usize, usize), i64> = HashMap::new();
        for (&(area, col), &v) in &base {
            underlying.insert((w1, area, col), v);
            if self.family != Family::Stock && w2 + 1 < weeks {
                underlying.insert((w2 + 1, area, col), -v);
            }
        }
        // Published changes, derived by definition: (is flow table, week, area, col).
        let mut published: HashMap<(bool, usize, usize, usize), i64> = HashMap::new();
        for &(area, col) in base.keys() {
            let mut running = 0;
            for w in 0..weeks {
                let u = underlying.get(&(w, area, col)).copied().unwrap_or(0);
                match self.family {
                    Family::Stock => {
                        if u != 0 {
                            published.insert((false, w, area, col), u);
                        }
                    }
                    Family::Cumulative | Family::FlowWithCumulative => {
                        running += u;
                        if running != 0 {
                            published.insert((false, w, area, col), running);
                        }
                        if self.family == Family::FlowWithCumulative && u != 0 {
                            published.insert((true, w, area, col), u);
                        }
                    }
                }
            }
        }
        // ALL is the sum of the prefectures.
        let mut all: HashMap<(bool, usize, usize), i64> = HashMap::new();
        for (&(f, w, _, col), &v) in &published {
            *all.entry((f, w, col)).or_default() += v;
        }
        for ((f, w, col), v) in all {
            if v != 0 {
                published.insert((f, w, 0, col), v);
            }
        }
        // Every changed cell is hidden and stays non-negative; every row keeps its total.
        let mut rows: HashMap<(bool, usize, usize), i64> = HashMap::new();
        for (&(f, w, area, col), &v) in &published {
            if !self.hidden(f, w, area, col) {
                return false;
            }
            let table = if f { self.flow.expect("flow") } else { self.main };
            // Unpublished ALL cells are sums of the prefectures, whose counts are checked.
            match table.get(w, area, col).value {
                None if area == 0 => {}
                None => return false,
                Some(x) if x + v < 0 => return false,
                Some(_) => {}
            }
            *rows.entry((f, w, area)).or_default() += v;
        }
        if rows.values().any(|v| *v != 0) {
            return false;
        }
        // The weekly counts of a cumulative table stay non-negative.
        if self.family == Family::Cumulative {
            for (&(w, area, col), &u) in &underlying {
                let now = self.main.get(w, area, col).value.unwrap_or(0);
                let before = if w == 0 {
                    0
                } else {
                    self.main.get(w - 1, area, col).value.unwrap_or(0)
                };
                if now - before + u < 0 {
                    return false;
                }
            }
        }
        published.get(&target).is_some_and(|v| *v != 0)
    }
}
