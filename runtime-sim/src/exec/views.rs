//! Operand-derived data of conv instructions, reused across the tile instructions of a layer.
//!
//! The lowering splits a conv into tiles that read the same operand (FF and BP tiles over output
//! channels share the input or the input-gradient keep-mask; image tiles share the weights).
//! Operands are looked up by their bytes in memory, their dtype and what the PE array does to them
//! on read (the BN block an input is normalised with, the mask applied to the weights): a lookup
//! compares the full contents bit for bit, and the shape, so a hit is always exact, and comparing
//! the stored bytes is much cheaper than decoding them again. Bytes whose memory stamp
//! ([`crate::memory::Memory::stamp`]) is the one an entry last saw are the entry's without the
//! comparison: an operand not written since, or loaded again from the same unchanged DRAM bytes.
//! An entry owns a copy of its bytes and decodes them on first use: a conv's input when it
//! issues, its weights in the first kernel job that uses them.
//!
//! What the census and the kernels derive from an operand — tap counts per im2col row, im2col
//! matrices and bit matrices, per-position tap counts, the weights' sparse forms — depends only on
//! its contents and the conv geometry, so it is kept with the entry ([`InputViews`],
//! [`WeightValues`]) and computed once for all the tiles that share it. BP's keep-masks have
//! their own memo ([`ConvViews::keep`]).
//!
//! Entries are shared ([`Arc`]) and fill their parts on first use ([`OnceLock`], [`LazyLock`]),
//! so the conv kernel and the census running side by side can both read one entry.

use super::conv_census::WeightViews;
use crate::kernels::conv::{ConvShape, OperandB};
use crate::kernels::density::{count_nonzero, nonzero_bitmap, BitMatrix};
use crate::kernels::numeric::Format;
use crate::memory::Stamp;
use std::borrow::Cow;
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};
use trainer_isa::DType;

/// Entries kept per kind, most recently used first (the tiles of a layer may cycle through the
/// images of the batch before moving to the next output-channel tile).
const SLOTS: usize = 64;

/// Weight entries kept: a layer's image tiles may each cycle through all its output-channel
/// tiles (BP and FF of ResNet-18's last layers: 128 tiles of 4 channels per group of images), so
/// the weights memo holds more of them, to reuse each tile's decoded weights and sparse forms
/// in the next group of images. Weight tiles are small (tens of KiB), and their key budget
/// ([`WEIGHT_KEY_BUDGET`]) smaller.
const WEIGHT_SLOTS: usize = 256;

/// Key elements kept per kind at most (besides the newest entry, always kept): what an entry
/// derives from its operand (decoded values, im2col matrices, sparse forms) grows with it, so
/// large operands (ImageNet-size layers) keep fewer entries instead of up to [`SLOTS`] of them.
/// ResNet-18 CIFAR's largest tile operands are about 64 KiB: 64 of them stay far below it.
const KEY_BUDGET: usize = 32 << 20;

/// [`KEY_BUDGET`] of the weights memo: ResNet-18's 128 last-layer tiles take 4.5 MiB (f16), and
/// what an entry derives (decoded values, sparse forms, S3's rounded copy) is several times its
/// key.
const WEIGHT_KEY_BUDGET: usize = 8 << 20;

/// A small most-recently-used memo keyed by a head (a conv shape, or more) and a sequence of
/// bytes or flags (compared with `==`, which for these is a `memcmp`). An entry read from memory
/// also keeps the key's [`Stamp`]: a key with the same stamp holds the same bytes, so it hits
/// without the comparison.
#[derive(Debug)]
struct Memo<H, K, V> {
    slots: Vec<Slot<H, K, V>>,
    /// Entries kept at most.
    capacity: usize,
    /// Key elements kept at most (besides the newest entry's).
    budget: usize,
}

/// One entry of a [`Memo`]: its head, its key's latest stamp, its key and its value.
type Slot<H, K, V> = (H, Option<Stamp>, Arc<Vec<K>>, Arc<V>);

/// A copy shares the entries (they are never changed once filled).
impl<H: Clone, K: Clone, V> Clone for Memo<H, K, V> {
    fn clone(&self) -> Self {
        Self {
            slots: self.slots.clone(),
            capacity: self.capacity,
            budget: self.budget,
        }
    }
}

impl<H: PartialEq, K: PartialEq + Clone, V> Memo<H, K, V> {
    /// An empty memo keeping at most `capacity` entries and `budget` key elements besides the
    /// newest entry's.
    fn new(capacity: usize, budget: usize) -> Self {
        Self {
            slots: Vec::new(),
            capacity,
            budget,
        }
    }

    /// The entry of `(head, key)`, made on a miss by `make` from the memo's copy of the key;
    /// `stamp` is the key's, if it was read from memory. The key is asked for only when no
    /// entry has the stamp (and, in debug builds, to check that one that has it holds it).
    fn get<'k>(
        &mut self,
        head: H,
        (key, stamp): (impl FnOnce() -> Cow<'k, [K]>, Option<Stamp>),
        make: impl FnOnce(Arc<Vec<K>>) -> V,
    ) -> Arc<V>
    where
        K: 'k,
    {
        let by_stamp =
            stamp.and_then(|st| (self.slots.iter()).position(|(h, s, _, _)| *h == head && *s == Some(st)));
        let key = match by_stamp {
            Some(i) => {
                debug_assert!(self.slots[i].2[..] == key()[..], "equal stamps, different bytes");
                None
            }
            None => Some(key()),
        };
        let hit = by_stamp.or_else(|| {
            let key = key.as_deref().expect("asked for without a stamp hit");
            (self.slots.iter()).position(|(h, _, k, _)| *h == head && k[..] == key[..])
        });
        match hit {
            Some(i) => {
                self.slots[i].1 = stamp;
                self.slots[..=i].rotate_right(1);
            }
            None => {
                let key = Arc::new(key.expect("asked for without a stamp hit").into_owned());
                let entry = Arc::new(make(Arc::clone(&key)));
                self.slots.insert(0, (head, stamp, key, entry));
                // Keep the newest entries that fit the budget (the newest one always).
                let mut kept = 0;
                let fit = self
                    .slots
                    .iter()
                    .skip(1)
                    .take(self.capacity - 1)
                    .take_while(|(_, _, k, _)| {
                        kept += k.len();
                        kept <= self.budget
                    });
                let keep = 1 + fit.count();
                self.slots.truncate(keep);
            }
        }
        Arc::clone(&self.slots[0].3)
    }
}

/// Derived data of a conv's cached operands (see the module documentation), and the output
/// buffers convs reuse (`Outputs`).
#[derive(Debug, Clone)]
pub struct ConvViews {
    operands: Memo<OperandHead, u8, Decoded>,
    weights: Memo<OperandHead, u8, Weights>,
    keeps: Memo<ConvShape, bool, KeepViews>,
    /// Output buffers of convs whose accounting is done, for later convs' outputs.
    pub outputs: Arc<Outputs>,
}

impl Default for ConvViews {
    fn default() -> Self {
        Self {
            operands: Memo::new(SLOTS, KEY_BUDGET),
            weights: Memo::new(WEIGHT_SLOTS, WEIGHT_KEY_BUDGET),
            keeps: Memo::new(SLOTS, KEY_BUDGET),
            outputs: Arc::default(),
        }
    }
}

/// Output buffers kept at most by [`Outputs`].
const SPARE_OUTPUTS: usize = 16;

/// Conv output buffers handed back once nothing reads them (after the census), so that later
/// convs' kernels, which overwrite their whole output, do not zero fresh memory first.
#[derive(Debug, Default)]
pub struct Outputs(Mutex<Vec<Vec<f32>>>);

/// A conv output from [`Outputs`]: the first `len` values of a buffer that may be longer (the
/// values after them are stale, and nothing reads them).
#[derive(Debug)]
pub struct OutBuf {
    buf: Vec<f32>,
    len: usize,
}

impl std::ops::Deref for OutBuf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[..self.len]
    }
}

impl std::ops::DerefMut for OutBuf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[..self.len]
    }
}

impl Outputs {
    /// A buffer of `len` values for an output its kernel overwrites whole (the values it holds
    /// are stale, not cleared): the shortest handed-back buffer that is long enough, else the
    /// longest one lengthened (only the new part is zeroed), else a new one of zeros.
    pub fn take(&self, len: usize) -> OutBuf {
        let spare = {
            let mut spare = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            let fits = (0..spare.len())
                .filter(|&i| spare[i].len() >= len)
                .min_by_key(|&i| spare[i].len());
            let longest = (0..spare.len()).max_by_key(|&i| spare[i].len());
            fits.or(longest).map(|i| spare.swap_remove(i))
        };
        let mut buf = spare.unwrap_or_default();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        OutBuf { buf, len }
    }

    /// Hands back a buffer nothing reads any more (of at most [`SPARE_OUTPUTS`] kept, the
    /// shortest is dropped).
    pub fn give(&self, y: OutBuf) {
        let mut spare = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        spare.push(y.buf);
        if spare.len() > SPARE_OUTPUTS {
            let shortest = (0..spare.len()).min_by_key(|&i| spare[i].len());
            shortest.map(|i| spare.swap_remove(i));
        }
    }
}

impl ConvViews {
    /// The entry of a data operand (`a`, or BP's pre-BN activation) of `shape` whose bytes in
    /// memory `raw` reads (with their stamp, [`crate::memory::Memory::stamp`]), read as `dtype`
    /// and transformed on read as `how` says; `make` makes its values when first used, from the
    /// memo's copy of `raw` (see `Decoded`).
    pub fn operand<'k>(
        &mut self,
        shape: &ConvShape,
        (dtype, how): (DType, OnRead),
        raw: (impl FnOnce() -> Cow<'k, [u8]>, Option<Stamp>),
        make: impl FnOnce(Arc<Vec<u8>>) -> MakeValues<DecodedValues>,
    ) -> Arc<Decoded> {
        let head = OperandHead {
            shape: *shape,
            dtype,
            how,
        };
        self.operands.get(head, raw, |raw| Decoded::new(make(raw)))
    }

    /// The entry of a weight operand (`b`: the weights in FF and BP, dy in WG), as
    /// [`ConvViews::operand`] (its own entries: the image tiles of a layer reuse the weights of
    /// an output-channel tile while its input changes).
    pub fn weights<'k>(
        &mut self,
        shape: &ConvShape,
        (dtype, how): (DType, OnRead),
        raw: (impl FnOnce() -> Cow<'k, [u8]>, Option<Stamp>),
        make: impl FnOnce(Arc<Vec<u8>>) -> MakeValues<WeightValues>,
    ) -> Arc<Weights> {
        let head = OperandHead {
            shape: *shape,
            dtype,
            how,
        };
        self.weights.get(head, raw, |raw| Weights {
            values: LazyLock::new(make(raw)),
        })
    }

    /// The views of BP input-gradient keep-mask `keep` (`None`: all kept) of `shape`.
    pub fn keep(&mut self, shape: &ConvShape, keep: Option<&[bool]>) -> Arc<KeepViews> {
        self.keeps
            .get(*shape, (|| Cow::Borrowed(keep.unwrap_or_default()), None), |_| {
                KeepViews::default()
            })
    }
}

/// What an operand entry's values depend on besides its bytes.
#[derive(Debug, Clone, PartialEq)]
struct OperandHead {
    shape: ConvShape,
    dtype: DType,
    how: OnRead,
}

/// What the PE array does to an operand's decoded values on read.
#[derive(Debug, Clone, PartialEq)]
pub enum OnRead {
    /// Nothing: used as decoded.
    AsIs,
    /// BN on read: the block's values as f32 bits, and whether ReLU follows.
    Bn(Vec<u32>, bool),
    /// Multiplied by a mask: its dtype and bytes.
    Mask(DType, Vec<u8>),
}

/// How an operand entry makes its values on first use: from the copy of its bytes it owns.
pub type MakeValues<T> = Box<dyn FnOnce() -> T + Send>;

/// A conv operand as the PE array uses it, shared by the tile instructions that read the same
/// bytes the same way (see [`ConvViews::operand`]). Its values are made on first use, by
/// whichever thread needs them first.
#[derive(Debug)]
pub struct Decoded {
    /// The values.
    values: LazyLock<DecodedValues, MakeValues<DecodedValues>>,
    /// The views of the values as an FF/WG input (filled on use).
    pub views: Arc<InputViews>,
}

impl Decoded {
    /// An entry whose values `make` makes.
    fn new(make: MakeValues<DecodedValues>) -> Self {
        Decoded {
            values: LazyLock::new(make),
            views: Arc::default(),
        }
    }

    /// The values (made now if no one has yet).
    pub fn values(&self) -> &DecodedValues {
        &self.values
    }
}

/// A conv's `b` operand as the PE array uses it, shared by the tile instructions that read the
/// same bytes the same way (see [`ConvViews::weights`]); its values are made on first use.
#[derive(Debug)]
pub struct Weights {
    /// The values.
    values: LazyLock<WeightValues, MakeValues<WeightValues>>,
}

impl Weights {
    /// The values (made now if no one has yet).
    pub fn values(&self) -> &WeightValues {
        &self.values
    }
}

/// The values of a [`Weights`] entry.
#[derive(Debug)]
pub struct WeightValues {
    /// The values as used, with the kernels' forms of them.
    pub op: OperandB,
    /// The non-zeros of the values.
    pub nonzero: u64,
    /// What the census derives from the values.
    pub census: WeightViews,
    /// The values rounded to e5m2 (S3's prediction), on first use.
    e5m2: OnceLock<OperandB>,
}

impl WeightValues {
    /// Values `x` as used.
    pub fn new(x: Vec<f32>) -> Self {
        WeightValues {
            nonzero: count_nonzero(&x),
            op: OperandB::from(x),
            census: WeightViews::default(),
            e5m2: OnceLock::new(),
        }
    }

    /// The values rounded to e5m2.
    pub fn e5m2(&self) -> &OperandB {
        self.e5m2.get_or_init(|| {
            let mut q = self.op.values().to_vec();
            Format::E5M2.quantize_slice(&mut q);
            OperandB::from(q)
        })
    }
}

/// The values of a [`Decoded`] operand.
#[derive(Debug, Clone)]
pub struct DecodedValues {
    /// Decoded (and normalised by BN on read, if any).
    pub x: Vec<f32>,
    /// The non-zeros of `x`.
    pub nonzero: u64,
    /// With BN on read: the ReLU mask (`x > 0` after BN).
    pub relu_mask: Option<Vec<bool>>,
}

impl DecodedValues {
    /// The values `x` as used, with their non-zeros counted.
    pub fn new(x: Vec<f32>, relu_mask: Option<Vec<bool>>) -> Self {
        Self {
            nonzero: count_nonzero(&x),
            x,
            relu_mask,
        }
    }
}

/// Data derived from an FF input `x` (N×C×H×W), computed on first use.
#[derive(Debug, Clone, Default)]
pub struct InputViews {
    row_counts: OnceLock<Vec<Vec<u64>>>,
    tap_counts: OnceLock<Vec<Vec<u64>>>,
    cols: OnceLock<Vec<BitMatrix>>,
    im2col: OnceLock<Vec<Vec<f32>>>,
    e5m2: OnceLock<Box<Rounded>>,
}

/// An input rounded to a narrower format, with its own views.
#[derive(Debug, Clone)]
pub struct Rounded {
    /// The rounded values.
    pub x: Vec<f32>,
    /// Their views.
    pub views: InputViews,
}

impl InputViews {
    /// Per group: the non-zero in-bounds taps of every im2col row, summed over the images (from
    /// the images' non-zeros summed per input position: the taps are linear in them).
    pub fn row_counts(&self, s: &ConvShape, x: &[f32]) -> &[Vec<u64>] {
        self.row_counts.get_or_init(|| {
            let part = s.cg() * s.h * s.w;
            (0..s.groups)
                .map(|g| {
                    let mut nz = vec![0u32; part];
                    for n in 0..s.n {
                        let xg = &x[(n * s.groups + g) * part..][..part];
                        nz.iter_mut()
                            .zip(xg)
                            .for_each(|(c, &v)| *c += u32::from(v != 0.0));
                    }
                    s.tap_row_counts(&nz)
                })
                .collect()
        })
    }

    /// Per group: the non-zero taps of every output position (the column counts of the im2col
    /// matrix, without building it), the images one after another (N·P counts).
    pub fn tap_counts(&self, s: &ConvShape, x: &[f32]) -> &[Vec<u64>] {
        self.tap_counts.get_or_init(|| {
            per_group(s, x, |xg| s.tap_counts(xg))
                .iter()
                .map(|c| c.concat())
                .collect()
        })
    }

    /// Per group: the im2col bits of every image side by side (J×(N·P)).
    pub fn cols(&self, s: &ConvShape, x: &[f32]) -> &[BitMatrix] {
        self.cols.get_or_init(|| {
            per_group(s, x, nonzero_bitmap)
                .iter()
                .map(|images| s.tap_bits(images))
                .collect()
        })
    }

    /// Per group: the im2col matrix of every image side by side (J×(N·P), see
    /// `ConvShape::im2col_batch`).
    pub fn im2col(&self, s: &ConvShape, x: &[f32]) -> &[Vec<f32>] {
        self.im2col
            .get_or_init(|| (0..s.groups).map(|g| s.im2col_batch(x, g)).collect())
    }

    /// `x` rounded to e5m2 (S3's prediction operand) and its views.
    pub fn e5m2(&self, x: &[f32]) -> &Rounded {
        self.e5m2.get_or_init(|| {
            let mut x = x.to_vec();
            Format::E5M2.quantize_slice(&mut x);
            Box::new(Rounded {
                x,
                views: InputViews::default(),
            })
        })
    }
}

/// `f` of every (image, group) part of an N×C×H×W tensor, collected per group in image order.
fn per_group<'x, E, T>(s: &ConvShape, x: &'x [E], f: impl Fn(&'x [E]) -> T) -> Vec<Vec<T>> {
    let part = s.cg() * s.h * s.w;
    (0..s.groups)
        .map(|g| {
            (0..s.n)
                .map(|n| f(&x[(n * s.groups + g) * part..][..part]))
                .collect()
        })
        .collect()
}

/// Data derived from a BP keep-mask over the input gradient, per group.
#[derive(Debug, Clone, Default)]
pub struct KeepViews {
    groups: OnceLock<Vec<KeptTaps>>,
}

/// The kept taps of one group of a BP input gradient, the images side by side.
#[derive(Debug, Clone)]
pub struct KeptTaps {
    /// In-bounds taps whose input is kept, as the im2col bit matrix (J×(N·P)).
    pub bits: BitMatrix,
    /// Kept taps per im2col row (row counts of `bits`).
    pub rows: Vec<u64>,
    /// Kept taps per input channel of the group, summed over the images.
    pub per_channel: Vec<u64>,
}

impl KeepViews {
    /// Per group.
    pub fn groups(&self, s: &ConvShape, keep: Option<&[bool]>) -> &[KeptTaps] {
        self.groups.get_or_init(|| {
            // The in-bounds taps reading each input position of a channel.
            let taps = &s.tap_sums(None);
            let per_group: Vec<Vec<Option<&[bool]>>> = match keep {
                Some(keep) => per_group(s, keep, Some),
                None => vec![vec![None; s.n]; s.groups],
            };
            per_group
                .iter()
                .map(|images| KeptTaps::new(s, images, taps))
                .collect()
        })
    }
}

impl KeptTaps {
    /// The kept taps of a group's images with keep-masks `keeps` (`None`: all kept).
    fn new(s: &ConvShape, keeps: &[Option<&[bool]>], taps: &[u64]) -> Self {
        let (plane, all) = (s.h * s.w, taps.iter().sum::<u64>());
        let mut per_channel = vec![0; s.cg()];
        for keep in keeps {
            for (ci, total) in per_channel.iter_mut().enumerate() {
                *total += match keep {
                    None => all,
                    Some(m) => m[ci * plane..][..plane]
                        .iter()
                        .zip(taps)
                        .map(|(&k, &t)| u64::from(k) * t)
                        .sum(),
                };
            }
        }
        let bits = s.kept_taps(keeps.iter().copied());
        Self {
            rows: (0..bits.rows()).map(|j| bits.row_count(j)).collect(),
            bits,
            per_channel,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn memo_hits_only_on_equal_contents_and_shape() {
        let s = ConvShape::simple(1, 1, 3, 1, 3, 1, 1);
        let t = ConvShape { k: 2, ..s };
        let mut v = ConvViews::default();
        let keep = [true, false, true];
        let first = v.keep(&s, Some(&keep));
        assert!(Arc::ptr_eq(&first, &v.keep(&s, Some(&keep))));
        // Other contents or another shape: other entries.
        assert!(!Arc::ptr_eq(&first, &v.keep(&s, Some(&[true, true, true]))));
        assert!(!Arc::ptr_eq(&first, &v.keep(&t, Some(&keep))));
        assert!(Arc::ptr_eq(&first, &v.keep(&s, Some(&keep))));
        // After SLOTS other entries the least recently used one is gone.
        for i in 0..SLOTS {
            let other: Vec<bool> = (0..7).map(|b| i >> b & 1 == 1).collect();
            v.keep(&s, Some(&other));
        }
        assert!(!Arc::ptr_eq(&first, &v.keep(&s, Some(&keep))));
    }

    #[test]
    fn outputs_hand_back_buffers_with_room() {
        let outputs = Outputs::default();
        let mut first = outputs.take(8);
        assert_eq!(*first, [0.0; 8]);
        first.fill(1.0);
        let at = first.as_ptr();
        outputs.give(first);
        // Room for five: the same buffer, five long, stale values kept.
        let again = outputs.take(5);
        assert_eq!((&*again, again.as_ptr()), (&[1.0; 5][..], at));
        outputs.give(again);
        // Room for eight again, with no zeroing: the buffer kept its length.
        assert_eq!(*outputs.take(8), [1.0; 8]);
        // Too short: a new buffer of zeros; then the longest spare lengthened, its new part zeroed.
        assert_eq!(*outputs.take(100), [0.0; 100]);
        let mut short = outputs.take(3);
        short.fill(2.0);
        outputs.give(short);
        let long = outputs.take(6);
        assert_eq!(*long, [2.0, 2.0, 2.0, 0.0, 0.0, 0.0]);
        outputs.give(long);
        // The shortest spares go first.
        let fresh = Outputs::default();
        let many: Vec<OutBuf> = (0..2 * SPARE_OUTPUTS).map(|len| fresh.take(len + 1)).collect();
        many.into_iter().for_each(|y| fresh.give(y));
        let mut lens: Vec<usize> = fresh.0.lock().unwrap().iter().map(Vec::len).collect();
        lens.sort_unstable();
        assert_eq!(lens, (SPARE_OUTPUTS + 1..=2 * SPARE_OUTPUTS).collect::<Vec<_>>());
    }

    #[test]
    fn memo_keeps_fewer_entries_of_large_operands() {
        let s = ConvShape::simple(1, 1, 2, 1, 1, 1, 0);
        let mut v = ConvViews::default();
        let (small, large) = (KEY_BUDGET / SLOTS, KEY_BUDGET / 4 + 1);
        let mut entry =
            |fill: u8, len: usize| operand(&mut v, &s, DType::F16, OnRead::AsIs, &vec![fill; len]);
        let first = entry(0, small);
        for i in 1..SLOTS as u8 {
            entry(i, small);
        }
        // SLOTS small entries fit: the first is still there.
        assert!(Arc::ptr_eq(&first, &entry(0, small)));
        // Beside the newest of five large ones only three fit: the oldest is gone.
        let large_first = entry(100, large);
        let second = entry(101, large);
        for i in 102..105 {
            entry(i, large);
        }
        assert!(Arc::ptr_eq(&second, &entry(101, large)));
        assert!(!Arc::ptr_eq(&large_first, &entry(100, large)));
        let newest = entry(200, 2 * KEY_BUDGET);
        assert!(
            Arc::ptr_eq(&newest, &entry(200, 2 * KEY_BUDGET)),
            "the newest entry stays"
        );
    }

    /// The operand entry of `raw` read as `dtype` and `how`; its values hold the bytes' count.
    fn operand(v: &mut ConvViews, s: &ConvShape, dtype: DType, how: OnRead, raw: &[u8]) -> Arc<Decoded> {
        v.operand(s, (dtype, how), (|| Cow::Borrowed(raw), None), |raw| {
            Box::new(move || DecodedValues::new(vec![raw.len() as f32], None))
        })
    }

    #[test]
    fn operands_are_shared_only_when_read_and_used_the_same_way() {
        let s = ConvShape::simple(1, 1, 2, 1, 1, 1, 0);
        let mut v = ConvViews::default();
        let raw = [0u8, 60, 0, 188];
        let bn = || OnRead::Bn(vec![1, 2, 3, 4], true);
        let first = operand(&mut v, &s, DType::F16, bn(), &raw);
        assert!(Arc::ptr_eq(&first, &operand(&mut v, &s, DType::F16, bn(), &raw)));
        // Other bytes, dtype, BN block, ReLU flag, transform or shape: other entries.
        let others = [
            operand(&mut v, &s, DType::F16, bn(), &[0, 60, 0, 60]),
            operand(&mut v, &s, DType::I32, bn(), &raw),
            operand(&mut v, &s, DType::F16, OnRead::Bn(vec![1, 2, 3, 5], true), &raw),
            operand(&mut v, &s, DType::F16, OnRead::Bn(vec![1, 2, 3, 4], false), &raw),
            operand(&mut v, &s, DType::F16, OnRead::AsIs, &raw),
            operand(&mut v, &s, DType::F16, OnRead::Mask(DType::B1, vec![1]), &raw),
            operand(&mut v, &ConvShape { k: 2, ..s }, DType::F16, bn(), &raw),
        ];
        for o in &others {
            assert!(!Arc::ptr_eq(&first, o));
        }
        assert!(Arc::ptr_eq(&first, &operand(&mut v, &s, DType::F16, bn(), &raw)));
    }

    #[test]
    fn entries_make_their_values_once_on_first_use_from_their_bytes() {
        let s = ConvShape::simple(1, 1, 2, 1, 1, 1, 0);
        let mut v = ConvViews::default();
        let made = Arc::new(AtomicUsize::new(0));
        let mut weights = |raw: &[u8]| {
            let made = Arc::clone(&made);
            v.weights(
                &s,
                (DType::F16, OnRead::AsIs),
                (|| Cow::Borrowed(raw), None),
                move |raw| {
                    Box::new(move || {
                        made.fetch_add(1, Ordering::SeqCst);
                        WeightValues::new(raw.iter().map(|&b| f32::from(b)).collect())
                    })
                },
            )
        };
        let first = weights(&[0, 60, 0, 188]);
        let again = weights(&[0, 60, 0, 188]);
        assert_eq!(made.load(Ordering::SeqCst), 0, "nothing is decoded at lookup");
        assert_eq!(again.values().op.values(), [0.0, 60.0, 0.0, 188.0]);
        assert_eq!(first.values().nonzero, 2);
        assert_eq!(made.load(Ordering::SeqCst), 1, "made once for both users");
    }

    #[test]
    fn weights_have_their_own_entries() {
        let s = ConvShape::simple(1, 1, 2, 1, 1, 1, 0);
        let mut v = ConvViews::default();
        let raw = [0u8, 60, 0, 188];
        let mut weights = |how: OnRead| {
            v.weights(&s, (DType::F16, how), (|| Cow::Borrowed(&raw[..]), None), |_| {
                Box::new(|| WeightValues::new(Vec::new()))
            })
        };
        let mask = || OnRead::Mask(DType::B1, vec![2]);
        let first = weights(mask());
        assert!(Arc::ptr_eq(&first, &weights(mask())));
        // More tiles than the other kinds keep: the first is still there.
        for i in 0..2 * SLOTS {
            weights(OnRead::Mask(DType::B1, vec![3, i as u8]));
        }
        assert!(Arc::ptr_eq(&first, &weights(mask())));
        assert!(!Arc::ptr_eq(&first, &weights(OnRead::Mask(DType::B1, vec![3]))));
        assert!(!Arc::ptr_eq(&first, &weights(OnRead::AsIs)));
        assert!(Arc::ptr_eq(&first, &weights(mask())));
    }

    #[test]
    fn entries_hit_by_their_stamp_or_their_bytes() {
        use crate::memory::{Buffers, Dram, Memory};
        use trainer_isa::{Operand, Space};
        let s = ConvShape::simple(1, 1, 2, 1, 1, 1, 0);
        let mut v = ConvViews::default();
        let mut m = Memory::new(Dram::new(64), Buffers::new([16, 16, 16, 16]));
        let op = Operand::new(Space::Ibuf, DType::F16, 0);
        // Times the memo asked for the bytes.
        let asked = std::cell::Cell::new(0);
        let mut lookup = |m: &Memory| {
            let bytes = || {
                asked.set(asked.get() + 1);
                m.operand_bytes("a", op, 4).unwrap()
            };
            v.weights(
                &s,
                (DType::F16, OnRead::AsIs),
                (bytes, m.stamp(Space::Ibuf, 0, 8)),
                |_| Box::new(|| WeightValues::new(Vec::new())),
            )
        };
        m.write_f32("a", op, &[1.0, 2.0, 3.0, 4.0]).unwrap();
        let first = lookup(&m);
        assert_eq!(asked.get(), 1);
        assert!(Arc::ptr_eq(&first, &lookup(&m)), "same stamp");
        // Not asked again, but for the debug builds' check.
        assert_eq!(asked.get(), 1 + usize::from(cfg!(debug_assertions)));
        // Written again with the same values: a new stamp, the same bytes.
        m.write_f32("a", op, &[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!(Arc::ptr_eq(&first, &lookup(&m)), "same bytes");
        m.write_f32("a", op, &[1.0, 2.0, 3.0, 5.0]).unwrap();
        assert!(!Arc::ptr_eq(&first, &lookup(&m)), "other bytes");
    }
}
