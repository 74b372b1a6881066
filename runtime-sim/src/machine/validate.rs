//! Value validation of a parsed machine: every failure names its dotted TOML key.

use super::Machine;

/// A rejected value: (dotted key, reason).
type Rejection = (String, String);

fn int_range(key: &str, v: u64, lo: u64, hi: u64) -> Result<(), Rejection> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err((key.to_string(), format!("{v} is outside {lo}..={hi}")))
    }
}

fn real_range(key: &str, v: f64, lo: f64, hi: f64, lo_inclusive: bool) -> Result<(), Rejection> {
    let above = if lo_inclusive { v >= lo } else { v > lo };
    if v.is_finite() && above && v <= hi {
        Ok(())
    } else {
        let open = if lo_inclusive { "[" } else { "(" };
        Err((key.to_string(), format!("{v} is outside {open}{lo}, {hi}]")))
    }
}

impl Machine {
    /// Checks every value's range; `Err((key, why))` for the first bad one.
    pub(crate) fn validate(&self) -> Result<(), Rejection> {
        if self.name.trim().is_empty() {
            return Err(("name".into(), "must not be empty".into()));
        }
        real_range("clock_mhz", self.clock_mhz, 1.0, 5000.0, true)?;
        let pe = &self.pe;
        int_range("pe.groups", pe.groups.into(), 1, 1024)?;
        int_range("pe.lanes_per_group", pe.lanes_per_group.into(), 1, 65536)?;
        int_range("pe.fp8_multiplier", pe.fp8_multiplier.into(), 1, 8)?;
        int_range("pe.fp32_divisor", pe.fp32_divisor.into(), 1, 64)?;
        int_range("pe.rf_bytes_per_lane", pe.rf_bytes_per_lane.into(), 1, 1 << 20)?;
        let u = &self.units;
        int_range("units.vector_per_cycle", u.vector_per_cycle.into(), 1, 1 << 20)?;
        int_range("units.bn_per_cycle", u.bn_per_cycle.into(), 1, 1 << 20)?;
        int_range("units.mask_per_cycle", u.mask_per_cycle.into(), 1, 1 << 20)?;
        int_range("units.spec_per_cycle", u.spec_per_cycle.into(), 1, 1 << 20)?;
        int_range(
            "units.compute_startup_cycles",
            u.compute_startup_cycles.into(),
            0,
            1 << 20,
        )?;
        for (name, b) in self.buffers.iter() {
            let key = |k: &str| format!("buffers.{name}.{k}");
            int_range(&key("size_bytes"), b.size_bytes, 1, 1 << 30)?;
            int_range(&key("banks"), b.banks.into(), 1, 1024)?;
            int_range(&key("width_bits"), b.width_bits.into(), 8, 4096)?;
            if b.width_bits % 8 != 0 {
                return Err((
                    key("width_bits"),
                    format!("{} is not a whole number of bytes", b.width_bits),
                ));
            }
            let row = u64::from(b.banks) * u64::from(b.width_bits / 8);
            if b.size_bytes % row != 0 {
                return Err((
                    key("size_bytes"),
                    format!(
                        "{} is not a multiple of banks × width ({row} bytes)",
                        b.size_bytes
                    ),
                ));
            }
        }
        real_range(
            "dram.bandwidth_gb_per_s",
            self.dram.bandwidth_gb_per_s,
            0.0,
            10_000.0,
            false,
        )?;
        int_range("dram.latency_cycles", self.dram.latency_cycles.into(), 0, 1 << 20)?;
        for (key, v) in self.energy.entries() {
            real_range(&key, v, 0.0, 1e6, true)?;
        }
        let mac = &self.energy.mac;
        for (mode, m) in [("fp32", &mac.fp32), ("fp16", &mac.fp16), ("fp8", &mac.fp8)] {
            for (kind, v) in [("gated", m.gated), ("skipped", m.skipped)] {
                if v > m.random {
                    return Err((
                        format!("energy.mac.{mode}.{kind}"),
                        format!("{v} pJ exceeds the random-data MAC ({} pJ)", m.random),
                    ));
                }
            }
        }
        Ok(())
    }
}
