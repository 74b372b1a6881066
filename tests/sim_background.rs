//! A compiled network trains to the same bits with conv kernels running in the background as with
//! one conv at a time: the same weights, events, cycles and speculation outcomes.

mod common;

use trainer_isa::names::CfgF32;
use trainer_sim::cost::CostModel;
use trainer_sim::{RunStats, Simulator};

/// Prunes to 90% and trains two steps on fixed random data; returns every run's statistics and
/// every tensor afterwards.
fn train(tbin: &[u8], background: usize) -> (Vec<RunStats>, Vec<Vec<f32>>) {
    let mut sim = Simulator::from_tbin(tbin, CostModel::resolve("trainer-28nm").unwrap()).unwrap();
    sim.set_background(background);
    let tensors = sim.program().tensors.clone();
    let input = tensors
        .iter()
        .find(|t| t.name == "input")
        .expect("an input tensor");
    let n = input.elements().unwrap() as usize;
    let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 255) as f32 / 255.0).collect();
    sim.write_tensor("input", &x).unwrap();
    let batch = input.shape[0] as usize;
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % 10).collect();
    sim.write_tensor_ints("labels", &labels).unwrap();
    let mut stats = vec![sim.run_entry("prune", &[(CfgF32::Sparsity, 0.9)]).unwrap()];
    for _ in 0..2 {
        stats.push(sim.run_entry("train", &[]).unwrap());
    }
    let values = tensors
        .iter()
        .filter(|t| !t.name.starts_with("labels"))
        .map(|t| sim.read_tensor(&t.name).unwrap())
        .collect();
    (stats, values)
}

#[test]
fn background_convs_train_to_the_same_bits() {
    let tmp = tempfile::tempdir().unwrap();
    let tbin = tmp.path().join("resnet18.tbin");
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/resnet18.tg");
    let o = common::trainer(&[
        "compile".as_ref(),
        model.as_os_str(),
        "--batch".as_ref(),
        "2".as_ref(),
        "--precision".as_ref(),
        "fp16".as_ref(),
        "--sparsity".as_ref(),
        "0.9".as_ref(),
        "--speculation".as_ref(),
        "s1,s2,s3".as_ref(),
        "--dataflow".as_ref(),
        "adaptive".as_ref(),
        "-o".as_ref(),
        tbin.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&tbin).unwrap();
    let (stats, values) = train(&bytes, 0);
    // Both steps do work; the second speculates (S3 needs the first step's BN statistics).
    assert!(stats[1..].iter().all(|s| s.effective_macs() > 0));
    assert!(stats[2].s3.0 > 0, "S3 predicted nothing");
    for background in [1, 4] {
        let (s, v) = train(&bytes, background);
        assert_eq!(s, stats, "statistics with {background} convs in the background");
        assert!(
            v == values,
            "tensors differ with {background} convs in the background"
        );
    }
}
