//! Deterministic random data and comparison helpers for kernel tests.

/// SplitMix64 generator (deterministic, dependency-free).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [-1, 1).
    pub fn signed(&mut self) -> f32 {
        2.0 * self.uniform() - 1.0
    }
}

/// `n` values in [-1, 1), each non-zero with probability `density`.
pub fn sparse_vec(rng: &mut Rng, n: usize, density: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            if rng.uniform() < density {
                rng.signed()
            } else {
                0.0
            }
        })
        .collect()
}

/// Asserts element-wise closeness to an f64 reference (relative to the reference's scale).
pub fn assert_close(got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "length");
    let scale = want.iter().fold(1e-3f64, |m, x| m.max(x.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= tol * scale,
            "element {i}: got {g}, want {w}"
        );
    }
}

/// The dot product in [`super::gemm::sddmm`]'s documented order, one product at a time: element
/// `e < len − len % 8` into lane `e % 8` (lanes from +0), then the lanes in order, plus the sum of
/// the remaining products.
pub fn lane_dot(a: &[f32], b: &[f32]) -> f32 {
    let whole = a.len() - a.len() % 8;
    let mut lanes = [0.0f32; 8];
    for e in 0..whole {
        lanes[e % 8] += a[e] * b[e];
    }
    let rest: f32 = (whole..a.len()).map(|e| a[e] * b[e]).sum();
    lanes.iter().sum::<f32>() + rest
}
