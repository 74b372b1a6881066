//! Conventions of the `sdt` dialect shared by autodiff, the SDT passes and the interpreter:
//! attribute access with readable errors, and the layout of the optional (fused) operands and
//! results of compute ops, selected by the `fused` attribute.
//!
//! `fused` is an array of feature names; each feature adds operands and results at fixed places
//! (after the fixed ones, in the canonical order [`FEATURES`]):
//!
//! | feature | on | extra operands | extra results |
//! |---|---|---|---|
//! | `bna`   | `conv_ff`, `conv_wg` | BN block `[4, C]` of the input (normalize on read, then ReLU) | `conv_ff`: ReLU mask of the normalized input |
//! | `omask` | `*_bp`, `*_wg` | output mask (`spec_s1`, `spec_s2` or pruning mask) | |
//! | `s3`    | `conv_ff` | `spec_s3` predictor (last step's BN block of the following BN) | |
//! | `bns`   | `conv_ff`, `matmul_ff` | | `[2, K]` statistics `Σy, Σy²` |
//! | `bns`   | `conv_bp`, `matmul_bp` | pre-BN activation `x`, BN block | `dγ = Σdx·x̂`, `dβ = Σdx` |

use crate::ir::{Attribute, Operation};

/// Fused features in canonical operand/result order.
pub const FEATURES: [&str; 4] = ["bna", "omask", "s3", "bns"];

/// Attribute accessors returning a message naming the op and the attribute on error.
pub trait AttrExt {
    /// Required attribute.
    fn req(&self, name: &str) -> Result<&Attribute, String>;
    /// Integer attribute.
    fn int_attr(&self, name: &str) -> Result<i64, String>;
    /// Number attribute (integers convert).
    fn float_attr(&self, name: &str) -> Result<f64, String>;
    /// Boolean attribute; absent means `false`.
    fn flag(&self, name: &str) -> bool;
    /// Integer array attribute.
    fn ints_attr(&self, name: &str) -> Result<Vec<i64>, String>;
    /// Non-negative integer array attribute.
    fn usizes_attr(&self, name: &str) -> Result<Vec<usize>, String>;
    /// String attribute.
    fn str_attr(&self, name: &str) -> Result<&str, String>;
    /// Whether the `fused` attribute lists `feature`.
    fn has_feature(&self, feature: &str) -> bool;
    /// Position of the first operand of `feature` (after `fixed` operands), if fused.
    fn feature_operand(&self, fixed: usize, feature: &str) -> Option<usize>;
}

/// Number of extra operands a feature adds to `op`.
pub(crate) fn operand_count(op: &str, feature: &str) -> usize {
    match feature {
        "bns" if op.ends_with("_bp") => 2,
        "bns" => 0,
        _ => 1,
    }
}

impl AttrExt for Operation {
    fn req(&self, name: &str) -> Result<&Attribute, String> {
        self.attr(name)
            .ok_or_else(|| format!("`{}` lacks attribute `{name}`", self.name()))
    }

    fn int_attr(&self, name: &str) -> Result<i64, String> {
        self.req(name)?
            .as_int()
            .ok_or_else(|| format!("`{}`: attribute `{name}` must be an integer", self.name()))
    }

    fn float_attr(&self, name: &str) -> Result<f64, String> {
        self.req(name)?
            .as_f64()
            .ok_or_else(|| format!("`{}`: attribute `{name}` must be a number", self.name()))
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.attr(name), Some(Attribute::Bool(true) | Attribute::Unit))
    }

    fn ints_attr(&self, name: &str) -> Result<Vec<i64>, String> {
        self.req(name)?
            .as_ints()
            .ok_or_else(|| format!("`{}`: attribute `{name}` must be an integer array", self.name()))
    }

    fn usizes_attr(&self, name: &str) -> Result<Vec<usize>, String> {
        self.ints_attr(name)?
            .into_iter()
            .map(|v| {
                usize::try_from(v)
                    .map_err(|_| format!("`{}`: attribute `{name}` has a negative entry", self.name()))
            })
            .collect()
    }

    fn str_attr(&self, name: &str) -> Result<&str, String> {
        self.req(name)?
            .as_str()
            .ok_or_else(|| format!("`{}`: attribute `{name}` must be a string", self.name()))
    }

    fn has_feature(&self, feature: &str) -> bool {
        self.attr("fused")
            .and_then(Attribute::as_array)
            .is_some_and(|a| a.iter().any(|f| f.as_str() == Some(feature)))
    }

    fn feature_operand(&self, fixed: usize, feature: &str) -> Option<usize> {
        if !self.has_feature(feature) {
            return None;
        }
        let before: usize = FEATURES
            .iter()
            .take_while(|&&f| f != feature)
            .filter(|f| self.has_feature(f))
            .map(|f| operand_count(self.name(), f))
            .sum();
        Some(fixed + before)
    }
}

/// The `fused` attribute listing `features` in canonical order.
pub fn fused_attr(features: &[&str]) -> Attribute {
    Attribute::Array(
        FEATURES
            .iter()
            .filter(|f| features.contains(f))
            .map(|f| Attribute::str(*f))
            .collect(),
    )
}

/// The features an op currently lists.
pub fn features(op: &Operation) -> Vec<&'static str> {
    FEATURES.iter().copied().filter(|f| op.has_feature(f)).collect()
}
