//! Tensor operands: memory space, element type and byte address.

use crate::names::{named_enum, NamedEnum};
use std::fmt;

named_enum!(
    /// Memory space of an operand.
    Space, "space" {
        /// Absent optional operand.
        None = "none",
        /// Off-chip DRAM: the program's flat byte-addressed image.
        Dram = "dram",
        /// Input-activation buffer.
        Ibuf = "ibuf",
        /// Weight buffer.
        Wbuf = "wbuf",
        /// Output / partial-sum buffer.
        Obuf = "obuf",
        /// Auxiliary buffer: masks, BN statistics, gradients, optimizer state.
        Gbuf = "gbuf",
    }
);

named_enum!(
    /// Element type of an operand or tensor.
    DType, "dtype" {
        /// IEEE binary32.
        F32 = "f32",
        /// IEEE binary16.
        F16 = "f16",
        /// fp8 E4M3 (OCP, finite-only, max 448).
        E4m3 = "e4m3",
        /// fp8 E5M2 (OCP, IEEE-like).
        E5m2 = "e5m2",
        /// Bitmap mask: 1 bit per element, LSB-first within bytes.
        B1 = "b1",
        /// Signed 32-bit integer.
        I32 = "i32",
        /// Signed 64-bit integer.
        I64 = "i64",
    }
);

impl DType {
    /// Size of `n` elements in bits.
    pub fn bits(self, n: u64) -> u64 {
        n * match self {
            DType::F32 | DType::I32 => 32,
            DType::F16 => 16,
            DType::E4m3 | DType::E5m2 => 8,
            DType::B1 => 1,
            DType::I64 => 64,
        }
    }

    /// Size of `n` elements in bytes (bitmaps round up to whole bytes).
    pub fn bytes(self, n: u64) -> u64 {
        self.bits(n).div_ceil(8)
    }
}

/// A tensor operand: where the tensor starts and how its elements are stored.
///
/// Encoded as one byte (`space` in bits 0..3, `dtype` in bits 3..6, bits 6..8 zero) followed by
/// the u32 little-endian byte address. The absent operand ([`Operand::NONE`]) is the all-zero
/// encoding; any other encoding with space `none` is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operand {
    /// Memory space.
    pub space: Space,
    /// Element type.
    pub dtype: DType,
    /// Byte offset within the space.
    pub addr: u32,
}

impl Operand {
    /// The absent operand.
    pub const NONE: Operand = Operand {
        space: Space::None,
        dtype: DType::F32,
        addr: 0,
    };

    /// A present operand.
    pub fn new(space: Space, dtype: DType, addr: u32) -> Self {
        Operand { space, dtype, addr }
    }

    /// Whether this is the absent operand.
    pub fn is_none(&self) -> bool {
        self.space == Space::None
    }

    /// The encoded tag byte.
    pub fn tag(&self) -> u8 {
        self.space.code() | (self.dtype.code() << 3)
    }

    /// Decodes a tag byte and address; `None` if the encoding is invalid or non-canonical.
    pub fn from_parts(tag: u8, addr: u32) -> Option<Self> {
        if tag >> 6 != 0 {
            return None;
        }
        let op = Operand {
            space: Space::from_code(tag & 7)?,
            dtype: DType::from_code(tag >> 3)?,
            addr,
        };
        if op.is_none() && (tag != 0 || addr != 0) {
            return None;
        }
        Some(op)
    }
}

impl fmt::Display for Operand {
    /// Assembly form: `none` or `space:dtype@0xADDR`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            f.write_str("none")
        } else {
            write!(f, "{}:{}@{:#x}", self.space.name(), self.dtype.name(), self.addr)
        }
    }
}
