//! Reports of a run: energy and cycles per layer tag, phase and component, as JSON and as a table.
//!
//! All maps are `BTreeMap`s and all sums run in a fixed order, so the same run gives byte-identical
//! output.

use crate::cost::CostModel;
use crate::ledger::{Event, Events, TagEntry};
use crate::sim::RunStats;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use trainer_isa::{NamedEnum, Program};

/// Energy and work of one group of events (a tag, a phase, or the whole run).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Row {
    /// Energy in pJ (all components, leakage included).
    pub energy_pj: f64,
    /// Energy per component in pJ.
    pub components: BTreeMap<String, f64>,
    /// Busy cycles of the compute queue.
    pub compute_cycles: u64,
    /// Effective MACs.
    pub effective_macs: u64,
    /// Dense-equivalent MACs.
    pub dense_macs: u64,
}

impl Row {
    fn add(&mut self, e: &TagEntry, cost: &CostModel) {
        for (ev, n) in e.events.iter() {
            let pj = n as f64 * cost.energy_pj[ev as usize];
            *self
                .components
                .entry(ev.report_component().to_string())
                .or_default() += pj;
        }
        self.energy_pj = self.components.values().sum();
        self.compute_cycles += e.compute_cycles;
        self.effective_macs += e.effective_macs;
        self.dense_macs += e.dense_macs;
    }
}

/// One layer-tag row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TagRow {
    /// Layer id.
    pub layer: u16,
    /// Layer name from metadata `layer.<id>`, if any.
    pub name: Option<String>,
    /// Phase name.
    pub phase: &'static str,
    /// Totals.
    #[serde(flatten)]
    pub row: Row,
}

/// The report of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Machine name.
    pub machine: String,
    /// Cycles of the run.
    pub cycles: u64,
    /// Run time in seconds at the machine's clock.
    pub seconds: f64,
    /// Instructions issued.
    pub instructions: u64,
    /// Busy cycles of the dma-load, dma-store and compute queues.
    pub queue_busy: [u64; 3],
    /// Whole-run totals.
    pub total: Row,
    /// Energy without DRAM traffic, pJ.
    pub on_chip_energy_pj: f64,
    /// MAC-array utilization: effective MACs / (lanes × cycles).
    pub utilization: f64,
    /// Totals per phase.
    pub phases: BTreeMap<String, Row>,
    /// Rows per (layer, phase) tag.
    pub tags: Vec<TagRow>,
    /// Event counts over the run, `component/action` → amount.
    pub events: BTreeMap<String, u64>,
    /// S3 outputs predicted zero.
    pub s3_predicted: u64,
    /// S3 predictions that were wrong (the exact output would pass the ReLU).
    pub s3_mispredicted: u64,
}

impl Report {
    /// Builds the report of `stats` under `cost`; layer names come from `program` metadata.
    pub fn new(stats: &RunStats, cost: &CostModel, program: &Program) -> Report {
        let mut total = Row::default();
        let mut phases: BTreeMap<String, Row> = BTreeMap::new();
        let mut tags = Vec::new();
        for (key, entry) in &stats.ledger.tags {
            total.add(entry, cost);
            phases
                .entry(key.phase().name().to_string())
                .or_default()
                .add(entry, cost);
            let mut row = Row::default();
            row.add(entry, cost);
            tags.push(TagRow {
                layer: key.layer,
                name: program.meta(&format!("layer.{}", key.layer)).map(str::to_string),
                phase: key.phase().name(),
                row,
            });
        }
        let events_total: Events = stats.ledger.total();
        let dram_pj: f64 = [Event::DramRead, Event::DramWrite]
            .iter()
            .map(|&e| events_total[e] as f64 * cost.energy_pj[e as usize])
            .sum();
        let lanes = cost.timing.lanes() as f64;
        Report {
            machine: cost.name.clone(),
            cycles: stats.cycles,
            seconds: stats.cycles as f64 / cost.timing.clock_hz,
            instructions: stats.instructions,
            queue_busy: stats.busy,
            on_chip_energy_pj: total.energy_pj - dram_pj,
            utilization: if stats.cycles == 0 {
                0.0
            } else {
                total.effective_macs as f64 / (lanes * stats.cycles as f64)
            },
            total,
            phases,
            tags,
            events: events_total.iter().map(|(e, n)| (e.name(), n)).collect(),
            s3_predicted: stats.s3.0,
            s3_mispredicted: stats.s3.1,
        }
    }

    /// Pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialize")
    }

    /// Human-readable table.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let uj = |pj: f64| pj / 1e6;
        let _ = writeln!(
            s,
            "machine {}: {} cycles ({:.3} ms), {} instructions",
            self.machine,
            self.cycles,
            self.seconds * 1e3,
            self.instructions
        );
        let _ = writeln!(
            s,
            "energy {:.3} uJ ({:.3} uJ on chip), utilization {:.1}%, effective MACs {} of {} dense",
            uj(self.total.energy_pj),
            uj(self.on_chip_energy_pj),
            100.0 * self.utilization,
            self.total.effective_macs,
            self.total.dense_macs
        );
        let _ = writeln!(
            s,
            "\n{:<24} {:>8} {:>14} {:>14} {:>14}",
            "layer", "phase", "energy uJ", "cycles", "eff. MACs"
        );
        for t in &self.tags {
            let name = t.name.clone().unwrap_or_else(|| format!("#{}", t.layer));
            let _ = writeln!(
                s,
                "{:<24} {:>8} {:>14.3} {:>14} {:>14}",
                name,
                t.phase,
                uj(t.row.energy_pj),
                t.row.compute_cycles,
                t.row.effective_macs
            );
        }
        let _ = writeln!(s, "\n{:<10} {:>14} {:>14}", "phase", "energy uJ", "cycles");
        for (p, r) in &self.phases {
            let _ = writeln!(s, "{:<10} {:>14.3} {:>14}", p, uj(r.energy_pj), r.compute_cycles);
        }
        let _ = writeln!(s, "\n{:<12} {:>14} {:>8}", "component", "energy uJ", "share");
        for (c, pj) in &self.total.components {
            let share = if self.total.energy_pj > 0.0 {
                100.0 * pj / self.total.energy_pj
            } else {
                0.0
            };
            let _ = writeln!(s, "{:<12} {:>14.3} {:>7.1}%", c, uj(*pj), share);
        }
        if self.s3_predicted > 0 {
            let _ = writeln!(
                s,
                "\nS3: {} outputs predicted zero, {} mis-speculated",
                self.s3_predicted, self.s3_mispredicted
            );
        }
        s
    }
}
