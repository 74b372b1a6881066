//! Deterministic initialization of parameters that a model does not carry (graph-only ONNX models,
//! `.tg` params).
//!
//! Every tensor gets its own random stream: a splitmix64 generator seeded from the user's seed and
//! an FNV-1a hash of the parameter's name, so a weight's values do not depend on the order in
//! which parameters are created. Normal samples come from the Box–Muller transform.

use crate::ir::TensorData;
use rayon::prelude::*;

/// How to fill a parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Kaiming/He normal: `N(0, sqrt(2 / fan_in))` (the ReLU gain), for conv and linear weights.
    He {
        /// Inputs feeding one output: `C_in/groups · kH · kW` for a conv, `in_features` for a
        /// linear layer.
        fan_in: usize,
    },
    /// All zeros (biases, BN shift and running mean).
    Zeros,
    /// All ones (BN scale and running variance).
    Ones,
}

impl Init {
    /// Parses the `.tg` spelling: `he`, `zeros`, `ones`.
    pub fn from_name(name: &str, fan_in: usize) -> Option<Init> {
        match name {
            "he" => Some(Init::He { fan_in }),
            "zeros" => Some(Init::Zeros),
            "ones" => Some(Init::Ones),
            _ => None,
        }
    }

    /// The default for a parameter of this shape: He with PyTorch's fan-in (product of all
    /// dimensions but the first) for rank ≥ 2, zeros for vectors and scalars.
    pub fn default_for(dims: &[usize]) -> Init {
        if dims.len() >= 2 {
            Init::He {
                fan_in: dims[1..].iter().product(),
            }
        } else {
            Init::Zeros
        }
    }

    /// A tensor of shape `dims` filled per `self`, from the stream of (`seed`, `name`).
    pub fn fill(self, name: &str, dims: &[usize], seed: u64) -> TensorData {
        let n: usize = dims.iter().product();
        let values = match self {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::He { fan_in } => {
                let std = (2.0 / fan_in.max(1) as f64).sqrt();
                let seed = seed ^ fnv1a(name.as_bytes());
                // Value `i` comes from draw `i` of the stream, so chunks are filled independently
                // (in parallel) from the generator jumped ahead to their first draw.
                let mut v = vec![0.0f32; n.next_multiple_of(2)];
                v.par_chunks_mut(HE_CHUNK).enumerate().for_each(|(c, chunk)| {
                    let mut rng = SplitMix64::at(seed, (c * HE_CHUNK) as u64);
                    for pair in chunk.chunks_exact_mut(2) {
                        let (a, b) = rng.normal_pair();
                        pair[0] = (a * std) as f32;
                        pair[1] = (b * std) as f32;
                    }
                });
                v.truncate(n);
                v
            }
        };
        TensorData {
            shape: dims.to_vec(),
            data: values,
        }
    }
}

/// FNV-1a 64-bit hash.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Values per parallel chunk of a He initialization (even: whole normal pairs).
const HE_CHUNK: usize = 1 << 16;

/// The increment of the splitmix64 state per draw.
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// The splitmix64 generator (Steele, Lea, Flood 2014).
struct SplitMix64(u64);

impl SplitMix64 {
    /// The generator seeded with `seed`, advanced by `draws` draws (the state after a draw is
    /// the seed plus the number of draws times the increment).
    fn at(seed: u64, draws: u64) -> Self {
        SplitMix64(seed.wrapping_add(draws.wrapping_mul(GOLDEN_GAMMA)))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1], never 0 (so the logarithm below is finite).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Two independent standard normal samples (Box–Muller).
    fn normal_pair(&mut self) -> (f64, f64) {
        let (u1, u2) = (self.uniform(), self.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        (r * c, r * s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn he_init_is_deterministic_and_scaled() {
        let a = Init::He { fan_in: 50 }.fill("conv.weight", &[64, 50], 7);
        let b = Init::He { fan_in: 50 }.fill("conv.weight", &[64, 50], 7);
        assert_eq!(a, b);
        let c = Init::He { fan_in: 50 }.fill("other.weight", &[64, 50], 7);
        assert_ne!(a, c);
        let v = &a.data;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 2.0 / 50.0).abs() < 0.004, "var {var}");
    }

    #[test]
    fn he_init_follows_one_stream_across_chunks() {
        let n = 2 * HE_CHUNK + 3;
        let t = Init::He { fan_in: 2 }.fill("w", &[n], 3);
        let mut rng = SplitMix64::at(3 ^ fnv1a(b"w"), 0);
        for pair in t.data.chunks(2) {
            let (a, b) = rng.normal_pair();
            assert_eq!(pair[0], a as f32);
            if let [_, second] = pair {
                assert_eq!(*second, b as f32);
            }
        }
    }

    #[test]
    fn constant_inits() {
        assert_eq!(Init::Ones.fill("bn.weight", &[3], 0).data, vec![1.0; 3]);
        assert_eq!(Init::default_for(&[3]), Init::Zeros);
        assert_eq!(Init::default_for(&[8, 3, 3, 3]), Init::He { fan_in: 27 });
    }
}
