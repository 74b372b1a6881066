//! The sparsity schedule options (`--schedule constant|ramp:F`), shared by `trainer compile` and
//! the host loop of `trainer run` (which reads them back from a binary's metadata).

/// Steps over which sparsity schedule `schedule` (`constant`, or `ramp:F`: linear from 0 over the
/// first fraction F of `steps`) ramps up: 0 for constant, else `round(F · steps)`. Shared by
/// `trainer compile` and the host loop of `trainer run`, which evaluates the schedule with
/// `trainer_compiler::interp::kernels::train::scheduled_sparsity`.
pub fn ramp_steps(schedule: &str, steps: Option<u64>) -> anyhow::Result<u64> {
    match schedule.split_once(':') {
        None if schedule == "constant" => Ok(0),
        Some(("ramp", f)) => {
            let f: f64 = f
                .parse()
                .map_err(|_| anyhow::anyhow!("--schedule ramp:F needs a number F, found `{f}`"))?;
            let steps = steps.ok_or_else(|| anyhow::anyhow!("--schedule ramp:F needs --steps"))?;
            if !(0.0..=1.0).contains(&f) {
                anyhow::bail!("--schedule ramp:F needs 0 <= F <= 1, found {f}");
            }
            Ok((f * steps as f64).round() as u64)
        }
        _ => anyhow::bail!("--schedule must be `constant` or `ramp:F`, found `{schedule}`"),
    }
}
