use super::k_quants::{
    GgmlType, MatmulTile, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ6K, BlockQ8K,
    BlockQ8_0, BlockQ8_1, QK8_0, QK8_1, QK_K,
};
use byteorder::{ByteOrder, LittleEndian};
use half::f16;

#[cfg(target_arch = "x86")]
use core::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

// [perimeter patch] Products of unsigned and signed bytes summed in fours into i32 lanes: AVX2
// takes two instructions (maddubs to i16 pairs, madd with ones), CPUs with VNNI one (vpdpbusd:
// AVX-VNNI on Alder Lake and later, AVX-512 VNNI on Ice Lake, Sapphire Rapids and Zen 4). The
// build's baseline stays AVX2; the kernels below that use this are compiled once per kind and
// the kind is chosen at run time. The sums are equal whenever maddubs does not saturate, which
// it cannot with these kernels' operands (|weight| ≤ 16 for Q4 and Q5, and quants in -127..=127
// as ggml's quantizers write them for Q8), so every kind gives the same bits.

/// The instructions a quantized kernel sums byte products with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteDot {
    Avx2,
    AvxVnni,
    Avx512Vnni,
}

impl ByteDot {
    /// Whether this CPU has the instructions.
    pub fn available(self) -> bool {
        match self {
            ByteDot::Avx2 => true,
            ByteDot::AvxVnni => is_x86_feature_detected!("avxvnni"),
            ByteDot::Avx512Vnni => is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl"),
        }
    }

    /// What it is called in `CANDLE_CPU_BYTE_DOT` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            ByteDot::Avx2 => "avx2",
            ByteDot::AvxVnni => "avx-vnni",
            ByteDot::Avx512Vnni => "avx512-vnni",
        }
    }
}

static BYTE_DOT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(u8::MAX);

/// The kind the kernels use: the fastest this CPU has, unless `CANDLE_CPU_BYTE_DOT` (avx2,
/// avx-vnni, avx512-vnni) or [`set_byte_dot`] chose another it has. AVX-512 VNNI comes first:
/// its kernels are compiled with AVX-512VL, so they have 32 vector registers instead of 16, and
/// the four-row Q4_K kernel (19 live vectors) stops spilling (Qwen 1.5B prompt +20%).
#[inline]
pub fn byte_dot() -> ByteDot {
    const KINDS: [ByteDot; 3] = [ByteDot::Avx2, ByteDot::AvxVnni, ByteDot::Avx512Vnni];
    match BYTE_DOT.load(std::sync::atomic::Ordering::Relaxed) {
        i if (i as usize) < KINDS.len() => KINDS[i as usize],
        _ => {
            let asked = std::env::var("CANDLE_CPU_BYTE_DOT").ok();
            let kind = KINDS
                .into_iter()
                .find(|k| asked.as_deref() == Some(k.name()) && k.available())
                .or_else(|| [ByteDot::Avx512Vnni, ByteDot::AvxVnni].into_iter().find(|k| k.available()))
                .unwrap_or(ByteDot::Avx2);
            BYTE_DOT.store(kind as u8, std::sync::atomic::Ordering::Relaxed);
            kind
        }
    }
}

/// Makes the kernels use `kind` from now on (to compare kinds); false, and no change, if this CPU
/// lacks it.
pub fn set_byte_dot(kind: ByteDot) -> bool {
    kind.available() && {
        BYTE_DOT.store(kind as u8, std::sync::atomic::Ordering::Relaxed);
        true
    }
}

/// One of the [`ByteDot`] kinds at compile time, for kernels generic over it.
pub(crate) trait ByteDotOp {
    /// i32 lane i = sum over j < 4 of u[4i + j] · s[4i + j] (u unsigned, s signed).
    unsafe fn dot(u: __m256i, s: __m256i) -> __m256i;

    /// `acc` plus, in i32 lane i, a[2i]·b[2i] + a[2i + 1]·b[2i + 1] (i16 lanes): `madd` then
    /// `add`, or one `vpdpwssd`. Integer sums that wrap alike, so the same bits either way.
    unsafe fn madd_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i;
}

pub(crate) struct Avx2;
pub(crate) struct AvxVnni;
pub(crate) struct Avx512Vnni;

impl ByteDotOp for Avx2 {
    #[inline(always)]
    unsafe fn dot(u: __m256i, s: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_set1_epi16(1), _mm256_maddubs_epi16(u, s))
    }

    #[inline(always)]
    unsafe fn madd_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))
    }
}

// Only ever inlined into functions that enable the instruction (see `with_byte_dot`).
impl ByteDotOp for AvxVnni {
    #[inline(always)]
    unsafe fn dot(u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s)
    }

    #[inline(always)]
    unsafe fn madd_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_dpwssd_avx_epi32(acc, a, b)
    }
}

impl ByteDotOp for Avx512Vnni {
    #[inline(always)]
    unsafe fn dot(u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
    }

    #[inline(always)]
    unsafe fn madd_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_dpwssd_epi32(acc, a, b)
    }
}

/// Evaluates `$body` with the type `$D` standing for the kind [`byte_dot`] chose. The body is
/// compiled once per kind inside a function that enables the kind's instructions: they can be
/// inlined only into such a function, so the dispatch sits outside the loops, not in them.
macro_rules! with_byte_dot {
    (($($arg:ident: $ty:ty),*) -> $ret:ty, $D:ident => $body:expr) => {{
        #[target_feature(enable = "avxvnni")]
        unsafe fn avx_vnni($($arg: $ty),*) -> $ret {
            type $D = $crate::quantized::avx::AvxVnni;
            $body
        }
        #[target_feature(enable = "avx512vnni,avx512vl")]
        unsafe fn avx512_vnni($($arg: $ty),*) -> $ret {
            type $D = $crate::quantized::avx::Avx512Vnni;
            $body
        }
        #[inline(always)]
        fn avx2($($arg: $ty),*) -> $ret {
            type $D = $crate::quantized::avx::Avx2;
            $body
        }
        match $crate::quantized::avx::byte_dot() {
            // SAFETY: byte_dot() returns only kinds this CPU has.
            $crate::quantized::avx::ByteDot::AvxVnni => unsafe { avx_vnni($($arg),*) },
            $crate::quantized::avx::ByteDot::Avx512Vnni => unsafe { avx512_vnni($($arg),*) },
            $crate::quantized::avx::ByteDot::Avx2 => avx2($($arg),*),
        }
    }};
}
pub(crate) use with_byte_dot;

/// [perimeter patch] `mul_sum_us8_pairs_float` with the byte products summed by `D`.
#[inline(always)]
unsafe fn dot_us8_float<D: ByteDotOp>(ax: __m256i, sy: __m256i) -> __m256 {
    _mm256_cvtepi32_ps(D::dot(ax, sy))
}

#[inline(always)]
pub(crate) unsafe fn sum_i16_pairs_float(x: __m256i) -> __m256 {
    let ones = _mm256_set1_epi16(1);
    let summed_pairs = _mm256_madd_epi16(ones, x);
    _mm256_cvtepi32_ps(summed_pairs)
}

#[inline(always)]
pub(crate) unsafe fn mul_sum_us8_pairs_float(ax: __m256i, sy: __m256i) -> __m256 {
    let dot = _mm256_maddubs_epi16(ax, sy);
    sum_i16_pairs_float(dot)
}

#[inline(always)]
pub(crate) unsafe fn hsum_float_8(x: __m256) -> f32 {
    let res = _mm256_extractf128_ps(x, 1);
    let res = _mm_add_ps(res, _mm256_castps256_ps128(x));
    let res = _mm_add_ps(res, _mm_movehl_ps(res, res));
    let res = _mm_add_ss(res, _mm_movehdup_ps(res));
    _mm_cvtss_f32(res)
}

#[inline(always)]
pub(crate) unsafe fn bytes_from_nibbles_32(rsi: *const u8) -> __m256i {
    let tmp = _mm_loadu_si128(rsi as *const __m128i);
    let bytes = _mm256_insertf128_si256::<1>(_mm256_castsi128_si256(tmp), _mm_srli_epi16(tmp, 4));
    let low_mask = _mm256_set1_epi8(0xF);
    _mm256_and_si256(low_mask, bytes)
}

#[inline(always)]
pub(crate) unsafe fn mul_sum_i8_pairs_float(x: __m256i, y: __m256i) -> __m256 {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    mul_sum_us8_pairs_float(ax, sy)
}

#[inline(always)]
pub(crate) fn vec_dot_q4_0_q8_0(n: usize, xs: &[BlockQ4_0], ys: &[BlockQ8_0]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK8_0),
        "vec_dot_q4_0_q8_0: {n} is not divisible by {QK8_0}"
    );
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = _mm256_set1_ps(f16::to_f32(x.d) * f16::to_f32(y.d));
            let bx = bytes_from_nibbles_32(x.qs.as_ptr());
            let off = _mm256_set1_epi8(8);
            let bx = _mm256_sub_epi8(bx, off);
            let by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            let q = mul_sum_i8_pairs_float(bx, by);
            acc = _mm256_fmadd_ps(d, q, acc);
        }
        hsum_float_8(acc)
    }
}

// [perimeter patch] Q5_0 had only the scalar loop, and Qwen2.5-Coder-0.5B's Q4_K_M file
// stores most of its weights as Q5_0 (rows of 896 are not a multiple of the K-quants' 256):
// `perf` put 83% of a 1000-token prompt in that loop. Each weight is (nibble | high bit << 4) - 16;
// as a signed byte that is the nibble itself when the high bit is set, and the nibble with its
// top four bits set (nibble - 16) when it is clear. So the 32 high bits are spread to one byte
// mask each, and 0xF0 is OR-ed into the bytes whose bit is clear; the rest is the Q4_0 kernel.
#[inline(always)]
pub(crate) fn vec_dot_q5_0_q8_0<D: ByteDotOp>(n: usize, xs: &[BlockQ5_0], ys: &[BlockQ8_0]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK8_0),
        "vec_dot_q5_0_q8_0: {n} is not divisible by {QK8_0}"
    );
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = _mm256_set1_ps(f16::to_f32(x.d) * f16::to_f32(y.d));
            let bx = q5_0_weights(x);
            let by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            acc = _mm256_fmadd_ps(d, dot_i8_float::<D>(bx, by), acc);
        }
        hsum_float_8(acc)
    }
}

/// [perimeter patch] The 32 weights of a Q5_0 block as signed bytes (see `vec_dot_q5_0_q8_0`).
#[inline(always)]
pub(crate) unsafe fn q5_0_weights(x: &BlockQ5_0) -> __m256i {
    // Byte i of the result reads byte i / 8 of the high bits ...
    let spread = _mm256_set_epi64x(
        0x0303030303030303,
        0x0202020202020202,
        0x0101010101010101,
        0x0000000000000000,
    );
    // ... and keeps only bit i % 8: all other bits are forced to one.
    let all_but_own_bit = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe_u64 as i64);
    let high_nibble = _mm256_set1_epi8(0xF0_u8 as i8);
    let bits = _mm256_set1_epi32(LittleEndian::read_u32(&x.qh) as i32);
    let own_bit = _mm256_or_si256(_mm256_shuffle_epi8(bits, spread), all_but_own_bit);
    let bit_set = _mm256_cmpeq_epi8(own_bit, _mm256_set1_epi8(-1));
    _mm256_or_si256(bytes_from_nibbles_32(x.qs.as_ptr()), _mm256_andnot_si256(bit_set, high_nibble))
}

/// [perimeter patch] `mul_sum_i8_pairs_float` with the byte products summed by `D`.
#[inline(always)]
unsafe fn dot_i8_float<D: ByteDotOp>(x: __m256i, y: __m256i) -> __m256 {
    dot_us8_float::<D>(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
}

/// [perimeter patch] [`vec_dot_q5_0_q8_0`] for four activation rows at once: each weight block's
/// five-bit values are assembled, and their signs taken, once for the four rows. Every row's
/// arithmetic is the one-row kernel's, in the same order, so the results are identical to four
/// calls.
#[inline(always)]
pub(crate) fn vec_dot_q5_0_q8_0_x4<D: ByteDotOp>(n: usize, xs: &[BlockQ5_0], ys: [&[BlockQ8_0]; 4]) -> [f32; 4] {
    debug_assert!(
        n.is_multiple_of(QK8_0),
        "vec_dot_q5_0_q8_0: {n} is not divisible by {QK8_0}"
    );
    unsafe { rows_q8_0::<D, _, 4>(xs, ys, &row_scales(ys, xs.len()), q5_0_block) }
}

/// [perimeter patch] [`vec_dot_q8_0_q8_0`] for four activation rows at once (the weights' signs
/// taken once); identical results to four calls.
#[inline(always)]
pub(crate) fn vec_dot_q8_0_q8_0_x4<D: ByteDotOp>(n: usize, xs: &[BlockQ8_0], ys: [&[BlockQ8_0]; 4]) -> [f32; 4] {
    debug_assert!(
        n.is_multiple_of(QK8_0),
        "vec_dot_q8_0_q8_0: {n} is not divisible by {QK8_0}"
    );
    unsafe { rows_q8_0::<D, _, 4>(xs, ys, &row_scales(ys, xs.len()), q8_0_block) }
}

/// The rows' block scales as f32, block by block (one array, so the kernel holds one pointer
/// for them, not one a row).
#[inline(always)]
fn row_scales<const R: usize>(ys: [&[BlockQ8_0]; R], blocks: usize) -> Vec<[f32; R]> {
    (0..blocks).map(|b| ys.map(|ys| f16::to_f32(ys[b].d))).collect()
}

/// [perimeter patch] The R-row kernel of the weight types whose activations are Q8_0 (Q5_0,
/// Q8_0): `weights` gives a block's weights as signed bytes and its scale; `y_d[b]` holds the
/// rows' scales of block b as f32, converted by the caller (once for many columns, in `matmul`).
/// Each row's arithmetic is the one-row kernels' (`dot_i8_float` and one FMA a block), with
/// the weights assembled and their absolute values taken once for the R rows. One row
/// (decoding) reads every weight once from memory, so it asks for them `PREFETCH_BYTES` ahead.
#[inline(always)]
unsafe fn rows_q8_0<D: ByteDotOp, T, const R: usize>(
    xs: &[T],
    ys: [&[BlockQ8_0]; R],
    y_d: &[[f32; R]],
    weights: impl Fn(&T) -> (__m256i, f32),
) -> [f32; R] {
    let ys = ys.map(|ys| &ys[..xs.len()]);
    let y_d = &y_d[..xs.len()];
    let mut acc = [_mm256_setzero_ps(); R];
    for (b, x) in xs.iter().enumerate() {
        if R == 1 {
            prefetch_ahead(x);
        }
        let (bx, x_d) = weights(x);
        let ax = _mm256_sign_epi8(bx, bx);
        for (r, acc) in acc.iter_mut().enumerate() {
            let d = _mm256_set1_ps(x_d * y_d[b][r]);
            let by = _mm256_loadu_si256(ys[r][b].qs.as_ptr() as *const __m256i);
            let q = dot_us8_float::<D>(ax, _mm256_sign_epi8(by, bx));
            *acc = _mm256_fmadd_ps(d, q, *acc);
        }
    }
    acc.map(|acc| hsum_float_8(acc))
}

/// [perimeter patch] How far ahead of the block being read the one-row kernels ask for weights.
/// Decoding reads every weight once, from memory: without asking ahead, Q5_0's kernel waited on
/// its loads and read ~8 GB/s of a 32 GB/s machine (Qwen2.5-Coder-0.5B decode 25 -> 34 tokens/s
/// with it). About a dozen 64-byte lines.
const PREFETCH_BYTES: usize = 768;

/// [perimeter patch] Prefetches the lines of the block `PREFETCH_BYTES` past `x` (a block of the
/// same matrix, or past its end: a prefetch never faults, and the address is only computed).
#[inline(always)]
unsafe fn prefetch_ahead<T>(x: *const T) {
    let ahead = (x as *const i8).wrapping_add(PREFETCH_BYTES);
    let mut line = 0;
    while line < std::mem::size_of::<T>() {
        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line));
        line += 64;
    }
}

/// [perimeter patch] One task of `matmul` for Q5_0 and Q8_0 weights, the rows' block scales
/// converted from f16 once for all the task's columns (`vec_dot` converts them once per column).
/// One row (decoding): column by column, the weights prefetched. A batch: eight rows at a time
/// against each column (each weight block assembled once for eight rows), then four, the rows
/// left over one at a time. The same values as `vec_dot` per element, bit for bit.
#[inline(always)]
pub(crate) fn matmul_tile_q8_0<D: ByteDotOp, T: GgmlType<VecDotType = BlockQ8_0>>(
    tile: &MatmulTile<'_, T>,
    weights: impl Fn(&T) -> (__m256i, f32) + Copy,
    one_row: impl Fn(usize, &[T], &[BlockQ8_0]) -> f32,
) {
    let blocks = tile.k_in_blocks();
    if tile.m == 1 {
        let y_d = row_scales([tile.lhs_row(0)], blocks);
        tile.run_singles(0, |_, xs, ys| unsafe { rows_q8_0::<D, T, 1>(xs, [ys], &y_d, weights)[0] });
        return;
    }
    let eights = tile.run_groups::<8, _>(
        0,
        |ys| row_scales(ys, blocks),
        |_, xs, ys, scales| unsafe { rows_q8_0::<D, T, 8>(xs, ys, scales, weights) },
    );
    let fours = tile.run_groups::<4, _>(
        eights,
        |ys| row_scales(ys, blocks),
        |_, xs, ys, scales| unsafe { rows_q8_0::<D, T, 4>(xs, ys, scales, weights) },
    );
    tile.run_singles(fours, one_row)
}

/// [perimeter patch] The Q5_0 block's weights and scale, for [`matmul_tile_q8_0`].
#[inline(always)]
pub(crate) fn q5_0_block(x: &BlockQ5_0) -> (__m256i, f32) {
    unsafe { (q5_0_weights(x), f16::to_f32(x.d)) }
}

/// [perimeter patch] The Q8_0 block's weights and scale, for [`matmul_tile_q8_0`].
#[inline(always)]
pub(crate) fn q8_0_block(x: &BlockQ8_0) -> (__m256i, f32) {
    unsafe { (_mm256_loadu_si256(x.qs.as_ptr() as *const __m256i), f16::to_f32(x.d)) }
}

// [perimeter patch] Q4_1 had only the scalar loop: an AVX2 kernel in the shape of the Q4_0 one
// (and of ggml's ggml_vec_dot_q4_1_q8_1). The nibbles are unsigned, so maddubs takes them as is;
// the block minimum comes in through the Q8_1 block's precomputed `s` (d * sum of its quants).
#[inline(always)]
pub(crate) fn vec_dot_q4_1_q8_1<D: ByteDotOp>(n: usize, xs: &[BlockQ4_1], ys: &[BlockQ8_1]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK8_1),
        "vec_dot_q4_1_q8_1: {n} is not divisible by {QK8_1}"
    );
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let mut summs = 0f32;
        for (x, y) in xs.iter().zip(ys.iter()) {
            summs += f16::to_f32(x.m) * f16::to_f32(y.s);
            let d = _mm256_set1_ps(f16::to_f32(x.d) * f16::to_f32(y.d));
            let bx = bytes_from_nibbles_32(x.qs.as_ptr());
            let by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            let q = dot_us8_float::<D>(bx, by);
            acc = _mm256_fmadd_ps(d, q, acc);
        }
        hsum_float_8(acc) + summs
    }
}

/// [perimeter patch] `BlockQ8_1::from_float` with AVX2: the activations of every quantized
/// matmul go through it, and the scalar loop (a serial `max` chain and `f32::round` per value)
/// took 4% of a 4000-token prompt. Bit-identical to the scalar loop: the same maximum, scale and
/// sum, and round-half-away-from-zero (what `f32::round` does) built from truncation, since the
/// instruction's nearest mode rounds ties to even.
pub(crate) fn quantize_row_q8_1(xs: &[f32], ys: &mut [BlockQ8_1]) {
    assert_eq!(xs.len(), ys.len() * QK8_1);
    for (xs, y) in xs.chunks_exact(QK8_1).zip(ys.iter_mut()) {
        unsafe {
            let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(xs.as_ptr().add(8 * i)));
            let sign = _mm256_set1_ps(-0.0);
            let abs = v.map(|v| _mm256_andnot_ps(sign, v));
            let m = _mm256_max_ps(_mm256_max_ps(abs[0], abs[1]), _mm256_max_ps(abs[2], abs[3]));
            let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
            let d = amax / ((1 << 7) - 1) as f32;
            let id = if d != 0f32 { 1. / d } else { 0. };
            y.d = f16::from_f32(d);
            let one = _mm256_set1_ps(1.0);
            let q = v.map(|v| {
                let x = _mm256_mul_ps(v, _mm256_set1_ps(id));
                let t = _mm256_round_ps(x, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
                // |x - trunc(x)| >= 0.5: one step away from zero (x - t is exact).
                let away = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(x, t)), _mm256_set1_ps(0.5), _CMP_GE_OQ);
                let step = _mm256_and_ps(away, _mm256_or_ps(one, _mm256_and_ps(sign, x)));
                _mm256_cvtps_epi32(_mm256_add_ps(t, step))
            });
            let sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
            let sum = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
            let sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0b01_00_11_10));
            let sum = _mm_cvtsi128_si32(_mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0b10_11_00_01)));
            // i32 → i8 in order: the packs work per 128-bit lane, the permute puts them back.
            let p16 = [_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3])];
            let p8 = _mm256_packs_epi16(p16[0], p16[1]);
            let p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256(y.qs.as_mut_ptr() as *mut __m256i, p8);
            y.s = f16::from_f32(sum as f32) * y.d;
        }
    }
}

/// [perimeter patch] [`vec_dot_q4_1_q8_1`] for four activation rows at once: each weight block
/// is unpacked once, and the block scales of the weights and of the four rows (f16 pairs
/// `d, m` and `d, s` at the start of each block) are converted with one F16C instruction and
/// multiplied with one vector multiply, instead of ten scalar conversions and eight scalar
/// products per block. Every row's arithmetic is the single-row kernel's, in the same order,
/// so the results are identical to four single-row calls.
#[cfg(target_feature = "f16c")]
#[inline(always)]
pub(crate) fn vec_dot_q4_1_q8_1_x4<D: ByteDotOp>(n: usize, xs: &[BlockQ4_1], ys: [&[BlockQ8_1]; 4]) -> [f32; 4] {
    debug_assert!(
        n.is_multiple_of(QK8_1),
        "vec_dot_q4_1_q8_1: {n} is not divisible by {QK8_1}"
    );
    let ys = ys.map(|ys| &ys[..xs.len()]);
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        // Lane 2r + 1 sums row r's `m·s` terms (the even lanes sum unused `d·d` products).
        let mut summs = _mm256_setzero_ps();
        let mut scales = [0f32; 8];
        // The two f16 at the start of a block (both block types are repr(C), 2-byte aligned).
        let head = |block: *const u8| std::ptr::read_unaligned(block as *const i32);
        for (b, x) in xs.iter().enumerate() {
            let x_dm = _mm_cvtph_ps(_mm_cvtsi32_si128(head(x as *const _ as *const u8)));
            let x_dm = _mm256_castpd_ps(_mm256_broadcastsd_pd(_mm_castps_pd(x_dm)));
            let y = |r: usize| head(&ys[r][b] as *const _ as *const u8);
            let y_ds = _mm256_cvtph_ps(_mm_set_epi32(y(3), y(2), y(1), y(0)));
            // [dx·d0, mx·s0, dx·d1, mx·s1, ...]
            let products = _mm256_mul_ps(x_dm, y_ds);
            summs = _mm256_add_ps(summs, products);
            _mm256_storeu_ps(scales.as_mut_ptr(), products);
            let bx = bytes_from_nibbles_32(x.qs.as_ptr());
            for (r, acc) in acc.iter_mut().enumerate() {
                let d = _mm256_set1_ps(scales[2 * r]);
                let by = _mm256_loadu_si256(ys[r][b].qs.as_ptr() as *const __m256i);
                let q = dot_us8_float::<D>(bx, by);
                *acc = _mm256_fmadd_ps(d, q, *acc);
            }
        }
        let mut sums = [0f32; 8];
        _mm256_storeu_ps(sums.as_mut_ptr(), summs);
        [0, 1, 2, 3].map(|r| hsum_float_8(acc[r]) + sums[2 * r + 1])
    }
}

// [perimeter patch] generic over how the byte products are summed (`ByteDot`).
#[inline(always)]
pub(crate) fn vec_dot_q8_0_q8_0<D: ByteDotOp>(n: usize, xs: &[BlockQ8_0], ys: &[BlockQ8_0]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK8_0),
        "vec_dot_q8_0_q8_0: {n} is not divisible by {QK8_0}"
    );
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = _mm256_set1_ps(f16::to_f32(x.d) * f16::to_f32(y.d));
            let bx = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
            let by = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
            let q = dot_i8_float::<D>(bx, by);
            acc = _mm256_fmadd_ps(d, q, acc);
        }
        hsum_float_8(acc)
    }
}

#[inline(always)]
unsafe fn get_scale_shuffle(i: usize) -> __m128i {
    const K_SHUFFLE: [u8; 128] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3,
        3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7,
        7, 7, 7, 7, 8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9, 10, 10, 10, 10, 10, 10, 10, 10,
        11, 11, 11, 11, 11, 11, 11, 11, 12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13,
        13, 14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15,
    ];
    _mm_loadu_si128((K_SHUFFLE.as_ptr() as *const __m128i).add(i))
}

#[inline(always)]
unsafe fn get_scale_shuffle_k4(i: usize) -> __m256i {
    const K_SHUFFLE: [u8; 256] = [
        0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
        0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3,
        2, 3, 2, 3, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5,
        4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7,
        6, 7, 6, 7, 6, 7, 6, 7, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9,
        8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10,
        11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 12, 13, 12, 13, 12, 13,
        12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12,
        13, 12, 13, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15,
        14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15,
    ];
    _mm256_loadu_si256((K_SHUFFLE.as_ptr() as *const __m256i).add(i))
}

#[inline(always)]
unsafe fn get_scale_shuffle_q3k(i: usize) -> __m256i {
    const K_SHUFFLE: [u8; 128] = [
        0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3,
        2, 3, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7,
        6, 7, 6, 7, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11, 10, 11,
        10, 11, 10, 11, 10, 11, 10, 11, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12,
        13, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15,
    ];
    _mm256_loadu_si256((K_SHUFFLE.as_ptr() as *const __m256i).add(i))
}

#[inline(always)]
pub(crate) fn vec_dot_q6k_q8k(n: usize, xs: &[BlockQ6K], ys: &[BlockQ8K]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK_K),
        "vec_dot_q6k_8k: {n} is not divisible by {QK_K}"
    );

    unsafe {
        let m4 = _mm256_set1_epi8(0xF);
        let m2 = _mm256_set1_epi8(3);
        let mut acc = _mm256_setzero_ps();
        for (x, y) in xs.iter().zip(ys.iter()) {
            prefetch_ahead(x); // [perimeter patch]
            let d = y.d * x.d.to_f32();
            let mut q4 = x.ql.as_ptr();
            let mut qh = x.qh.as_ptr();
            let mut q8 = y.qs.as_ptr();

            let scales = _mm_loadu_si128(x.scales.as_ptr() as *const __m128i);
            let mut sumi = _mm256_setzero_si256();

            for j in 0..QK_K / 128 {
                let is = j * 4;
                let scale_0 = _mm_shuffle_epi8(scales, get_scale_shuffle(is));
                let scale_1 = _mm_shuffle_epi8(scales, get_scale_shuffle(is + 1));
                let scale_2 = _mm_shuffle_epi8(scales, get_scale_shuffle(is + 2));
                let scale_3 = _mm_shuffle_epi8(scales, get_scale_shuffle(is + 3));

                let q4bits1 = _mm256_loadu_si256(q4 as *const __m256i);
                q4 = q4.add(32);
                let q4bits2 = _mm256_loadu_si256(q4 as *const __m256i);
                q4 = q4.add(32);
                let q4bits_h = _mm256_loadu_si256(qh as *const __m256i);
                qh = qh.add(32);

                let q4h_0 = _mm256_slli_epi16(_mm256_and_si256(q4bits_h, m2), 4);
                let q4h_1 =
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits_h, 2), m2), 4);
                let q4h_2 =
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits_h, 4), m2), 4);
                let q4h_3 =
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits_h, 6), m2), 4);

                let q4_0 = _mm256_or_si256(_mm256_and_si256(q4bits1, m4), q4h_0);
                let q4_1 = _mm256_or_si256(_mm256_and_si256(q4bits2, m4), q4h_1);
                let q4_2 =
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits1, 4), m4), q4h_2);
                let q4_3 =
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits2, 4), m4), q4h_3);

                let q8_0 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_1 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_2 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_3 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);

                let p16_0 = _mm256_maddubs_epi16(q4_0, q8_0);
                let p16_1 = _mm256_maddubs_epi16(q4_1, q8_1);
                let p16_2 = _mm256_maddubs_epi16(q4_2, q8_2);
                let p16_3 = _mm256_maddubs_epi16(q4_3, q8_3);

                let p16_0 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scale_0), p16_0);
                let p16_1 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scale_1), p16_1);
                let p16_2 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scale_2), p16_2);
                let p16_3 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scale_3), p16_3);

                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16_0, p16_1));
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16_2, p16_3));
            }
            let sumi = _mm256_sub_epi32(sumi, q6k_offsets(scales, y)); // [perimeter patch]
            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&d), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum_float_8(acc)
    }
}

/// [perimeter patch] What a Q6_K block's stored offset of 32 takes from its scaled sums:
/// Σ scale·32·q8 over its sixteen groups of sixteen weights, from the Q8_K block's group sums
/// (`bsums`), in eight i32 lanes. Upstream took `maddubs(32, q8)` from every product, two of the
/// five instructions per 32 weights and row; the integer total is the same.
#[inline(always)]
unsafe fn q6k_offsets(scales: __m128i, y: &BlockQ8K) -> __m256i {
    let bsums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
    _mm256_slli_epi32(_mm256_madd_epi16(_mm256_cvtepi8_epi16(scales), bsums), 5)
}

/// [perimeter patch] A Q6_K block's six-bit values (0..=63) of weights `128 * h ..
/// 128 * (h + 1)`, 32 at a time in weight order: weight `128 * h + 32 * k + l` (`l` < 32) has its
/// low four bits in `ql[64 * h + 32 * (k % 2) + l]` (the low nibble for `k` < 2, the high one
/// else) and its high two at bits `2k` of `qh[32 * h + l]`. As [`vec_dot_q6k_q8k`] assembles them.
#[inline(always)]
pub(crate) unsafe fn q6k_weights_128(x: &BlockQ6K, h: usize) -> [__m256i; 4] {
    let m4 = _mm256_set1_epi8(0xF);
    let m2 = _mm256_set1_epi8(3);
    let ql_0 = _mm256_loadu_si256(x.ql.as_ptr().add(64 * h) as *const __m256i);
    let ql_1 = _mm256_loadu_si256(x.ql.as_ptr().add(64 * h + 32) as *const __m256i);
    let qh = _mm256_loadu_si256(x.qh.as_ptr().add(32 * h) as *const __m256i);
    let high_0 = _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4);
    let high_1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4);
    let high_2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4);
    let high_3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4);
    [
        _mm256_or_si256(_mm256_and_si256(ql_0, m4), high_0),
        _mm256_or_si256(_mm256_and_si256(ql_1, m4), high_1),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql_0, 4), m4), high_2),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql_1, 4), m4), high_3),
    ]
}

/// [perimeter patch] [`vec_dot_q6k_q8k`] for four activation rows at once: each weight block's
/// six-bit values are assembled (low nibbles and high bit pairs) and its scales widened once
/// for the four rows. Every row's arithmetic is the one-row kernel's, in the same order, so the
/// results are identical to four calls. The scaled sums go through `D` (one `vpdpwssd` with VNNI).
#[inline(always)]
pub(crate) fn vec_dot_q6k_q8k_x4<D: ByteDotOp>(n: usize, xs: &[BlockQ6K], ys: [&[BlockQ8K]; 4]) -> [f32; 4] {
    debug_assert!(
        n.is_multiple_of(QK_K),
        "vec_dot_q6k_8k: {n} is not divisible by {QK_K}"
    );
    let ys = ys.map(|ys| &ys[..xs.len()]);

    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        for (b, x) in xs.iter().enumerate() {
            let x_d = x.d.to_f32();
            let scales = _mm_loadu_si128(x.scales.as_ptr() as *const __m128i);
            let mut sumi = [_mm256_setzero_si256(); 4];

            for j in 0..QK_K / 128 {
                let is = j * 4;
                let scale_0 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, get_scale_shuffle(is)));
                let scale_1 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, get_scale_shuffle(is + 1)));
                let scale_2 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, get_scale_shuffle(is + 2)));
                let scale_3 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, get_scale_shuffle(is + 3)));

                let [q4_0, q4_1, q4_2, q4_3] = q6k_weights_128(x, j);

                for (r, sumi) in sumi.iter_mut().enumerate() {
                    let q8 = ys[r][b].qs.as_ptr().add(128 * j);
                    let q8_0 = _mm256_loadu_si256(q8 as *const __m256i);
                    let q8_1 = _mm256_loadu_si256(q8.add(32) as *const __m256i);
                    let q8_2 = _mm256_loadu_si256(q8.add(64) as *const __m256i);
                    let q8_3 = _mm256_loadu_si256(q8.add(96) as *const __m256i);

                    let p16_0 = _mm256_maddubs_epi16(q4_0, q8_0);
                    let p16_1 = _mm256_maddubs_epi16(q4_1, q8_1);
                    let p16_2 = _mm256_maddubs_epi16(q4_2, q8_2);
                    let p16_3 = _mm256_maddubs_epi16(q4_3, q8_3);

                    *sumi = D::madd_acc(*sumi, scale_0, p16_0);
                    *sumi = D::madd_acc(*sumi, scale_1, p16_1);
                    *sumi = D::madd_acc(*sumi, scale_2, p16_2);
                    *sumi = D::madd_acc(*sumi, scale_3, p16_3);
                }
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let d = ys[r][b].d * x_d;
                let sumi = _mm256_sub_epi32(sumi[r], q6k_offsets(scales, &ys[r][b]));
                *acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&d), _mm256_cvtepi32_ps(sumi), *acc);
            }
        }
        acc.map(|acc| hsum_float_8(acc))
    }
}

#[inline(always)]
unsafe fn mm256_set_m128i(a: __m128i, b: __m128i) -> __m256i {
    _mm256_insertf128_si256(_mm256_castsi128_si256(b), a, 1)
}

#[inline(always)]
pub(crate) fn vec_dot_q2k_q8k(n: usize, xs: &[BlockQ2K], ys: &[BlockQ8K]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK_K),
        "vec_dot_q2k_q8k: {n} is not divisible by {QK_K}"
    );

    unsafe {
        let m3 = _mm256_set1_epi8(3);
        let m4 = _mm_set1_epi8(0xF);

        let mut acc = _mm256_setzero_ps();

        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = y.d * x.d.to_f32();
            let dmin = -y.d * x.dmin.to_f32();

            let mut q2 = x.qs.as_ptr();
            let mut q8 = y.qs.as_ptr();

            let mins_and_scales = _mm_loadu_si128(x.scales.as_ptr() as *const __m128i);
            let scales8 = _mm_and_si128(mins_and_scales, m4);
            let mins8 = _mm_and_si128(_mm_srli_epi16(mins_and_scales, 4), m4);
            let mins = _mm256_cvtepi8_epi16(mins8);
            let prod =
                _mm256_madd_epi16(mins, _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i));

            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&dmin), _mm256_cvtepi32_ps(prod), acc);

            let all_scales = _mm256_cvtepi8_epi16(scales8);
            let l_scales = _mm256_extracti128_si256(all_scales, 0);
            let h_scales = _mm256_extracti128_si256(all_scales, 1);
            let scales = [
                mm256_set_m128i(l_scales, l_scales),
                mm256_set_m128i(h_scales, h_scales),
            ];

            let mut sumi = _mm256_setzero_si256();

            for scale in scales {
                let q2bits = _mm256_loadu_si256(q2 as *const __m256i);
                q2 = q2.add(32);

                let q8_0 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_1 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_2 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_3 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);

                let q2_0 = _mm256_and_si256(q2bits, m3);
                let q2_1 = _mm256_and_si256(_mm256_srli_epi16(q2bits, 2), m3);
                let q2_2 = _mm256_and_si256(_mm256_srli_epi16(q2bits, 4), m3);
                let q2_3 = _mm256_and_si256(_mm256_srli_epi16(q2bits, 6), m3);

                let p0 = _mm256_maddubs_epi16(q2_0, q8_0);
                let p1 = _mm256_maddubs_epi16(q2_1, q8_1);
                let p2 = _mm256_maddubs_epi16(q2_2, q8_2);
                let p3 = _mm256_maddubs_epi16(q2_3, q8_3);

                let p0 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(scale, get_scale_shuffle_q3k(0)), p0);
                let p1 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(scale, get_scale_shuffle_q3k(1)), p1);
                let p2 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(scale, get_scale_shuffle_q3k(2)), p2);
                let p3 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(scale, get_scale_shuffle_q3k(3)), p3);

                let p0 = _mm256_add_epi32(p0, p1);
                let p2 = _mm256_add_epi32(p2, p3);

                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p2));
            }
            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&d), _mm256_cvtepi32_ps(sumi), acc);
        }

        hsum_float_8(acc)
    }
}

#[inline(always)]
pub(crate) fn vec_dot_q3k_q8k(n: usize, xs: &[BlockQ3K], ys: &[BlockQ8K]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK_K),
        "vec_dot_q3k_q8k: {n} is not divisible by {QK_K}"
    );

    const KMASK1: u32 = 0x03030303;
    const KMASK2: u32 = 0x0f0f0f0f;

    let mut aux = [0u32; 3];

    unsafe {
        let m3 = _mm256_set1_epi8(3);
        let mone = _mm256_set1_epi8(1);
        let m32 = _mm_set1_epi8(32);

        let mut acc = _mm256_setzero_ps();
        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = y.d * x.d.to_f32();

            let mut q3 = x.qs.as_ptr();
            let mut q8 = y.qs.as_ptr();

            LittleEndian::read_u32_into(&x.scales, &mut aux);
            let scales128 = _mm_set_epi32(
                (((aux[1] >> 4) & KMASK2) | (((aux[2] >> 6) & KMASK1) << 4)) as i32,
                (((aux[0] >> 4) & KMASK2) | (((aux[2] >> 4) & KMASK1) << 4)) as i32,
                ((aux[1] & KMASK2) | (((aux[2] >> 2) & KMASK1) << 4)) as i32,
                ((aux[0] & KMASK2) | (((aux[2]) & KMASK1) << 4)) as i32,
            );
            let scales128 = _mm_sub_epi8(scales128, m32);
            let all_scales = _mm256_cvtepi8_epi16(scales128);
            let l_scales = _mm256_extracti128_si256(all_scales, 0);
            let h_scales = _mm256_extracti128_si256(all_scales, 1);
            let scales = [
                mm256_set_m128i(l_scales, l_scales),
                mm256_set_m128i(h_scales, h_scales),
            ];

            // high bit
            let hbits = _mm256_loadu_si256(x.hmask.as_ptr() as *const __m256i);

            let mut sumi = _mm256_setzero_si256();

            for (j, scale) in scales.iter().enumerate() {
                // load low 2 bits
                let q3bits = _mm256_loadu_si256(q3 as *const __m256i);
                q3 = q3.add(32);

                // Prepare low and high bits
                // We hardcode the shifts here to avoid loading them into a separate register
                let q3l_0 = _mm256_and_si256(q3bits, m3);
                let q3h_0 = if j == 0 {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 0)), 0)
                } else {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 4)), 4)
                };
                let q3h_0 = _mm256_slli_epi16(q3h_0, 2);

                let q3l_1 = _mm256_and_si256(_mm256_srli_epi16(q3bits, 2), m3);
                let q3h_1 = if j == 0 {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 1)), 1)
                } else {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 5)), 5)
                };
                let q3h_1 = _mm256_slli_epi16(q3h_1, 2);

                let q3l_2 = _mm256_and_si256(_mm256_srli_epi16(q3bits, 4), m3);
                let q3h_2 = if j == 0 {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 2)), 2)
                } else {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 6)), 6)
                };
                let q3h_2 = _mm256_slli_epi16(q3h_2, 2);

                let q3l_3 = _mm256_and_si256(_mm256_srli_epi16(q3bits, 6), m3);
                let q3h_3 = if j == 0 {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 3)), 3)
                } else {
                    _mm256_srli_epi16(_mm256_andnot_si256(hbits, _mm256_slli_epi16(mone, 7)), 7)
                };
                let q3h_3 = _mm256_slli_epi16(q3h_3, 2);

                // load Q8 quants
                let q8_0 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_1 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_2 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_3 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);

                // Dot product: we multiply the 2 low bits and 1 high bit part separately, so we
                // can use _mm256_maddubs_epi16, and then subtract. The high bit part has the 2
                // already subtracted (and so, it is zero if the high bit was not set, and 2 if the
                // high bit was set)
                let q8s_0 = _mm256_maddubs_epi16(q3h_0, q8_0);
                let q8s_1 = _mm256_maddubs_epi16(q3h_1, q8_1);
                let q8s_2 = _mm256_maddubs_epi16(q3h_2, q8_2);
                let q8s_3 = _mm256_maddubs_epi16(q3h_3, q8_3);

                let p16_0 = _mm256_maddubs_epi16(q3l_0, q8_0);
                let p16_1 = _mm256_maddubs_epi16(q3l_1, q8_1);
                let p16_2 = _mm256_maddubs_epi16(q3l_2, q8_2);
                let p16_3 = _mm256_maddubs_epi16(q3l_3, q8_3);

                let p16_0 = _mm256_sub_epi16(p16_0, q8s_0);
                let p16_1 = _mm256_sub_epi16(p16_1, q8s_1);
                let p16_2 = _mm256_sub_epi16(p16_2, q8s_2);
                let p16_3 = _mm256_sub_epi16(p16_3, q8s_3);

                // multiply with scales
                let p16_0 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(*scale, get_scale_shuffle_q3k(0)), p16_0);
                let p16_1 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(*scale, get_scale_shuffle_q3k(1)), p16_1);
                let p16_2 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(*scale, get_scale_shuffle_q3k(2)), p16_2);
                let p16_3 =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(*scale, get_scale_shuffle_q3k(3)), p16_3);

                // accumulate
                let p16_0 = _mm256_add_epi32(p16_0, p16_1);
                let p16_2 = _mm256_add_epi32(p16_2, p16_3);
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16_0, p16_2));
            }

            // multiply with block scale and accumulate
            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&d), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum_float_8(acc)
    }
}

#[inline(always)]
pub(crate) fn vec_dot_q4k_q8k(n: usize, xs: &[BlockQ4K], ys: &[BlockQ8K]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK_K),
        "vec_dot_q4k_q8k: {n} is not divisible by {QK_K}"
    );
    let mut utmp = [0u32; 4];
    const KMASK1: u32 = 0x3f3f3f3f;
    const KMASK2: u32 = 0x0f0f0f0f;
    const KMASK3: u32 = 0x03030303;

    unsafe {
        let m4 = _mm256_set1_epi8(0xF);

        let mut acc = _mm256_setzero_ps();
        let mut acc_m = _mm_setzero_ps();

        for (x, y) in xs.iter().zip(ys.iter()) {
            prefetch_ahead(x); // [perimeter patch]
            let d = y.d * x.d.to_f32();
            let dmin = -y.d * x.dmin.to_f32();

            LittleEndian::read_u32_into(&x.scales, &mut utmp[0..3]);

            utmp[3] = ((utmp[2] >> 4) & KMASK2) | (((utmp[1] >> 6) & KMASK3) << 4);
            let uaux = utmp[1] & KMASK1;
            utmp[1] = (utmp[2] & KMASK2) | (((utmp[0] >> 6) & KMASK3) << 4);
            utmp[2] = uaux;
            utmp[0] &= KMASK1;

            let mut q4 = x.qs.as_ptr();
            let mut q8 = y.qs.as_ptr();

            let mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32(
                utmp[3] as i32,
                utmp[2] as i32,
                utmp[1] as i32,
                utmp[0] as i32,
            ));

            let q8sums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
            let q8s = _mm_hadd_epi16(
                _mm256_extracti128_si256(q8sums, 0),
                _mm256_extracti128_si256(q8sums, 1),
            );
            let prod = _mm_madd_epi16(_mm256_extracti128_si256(mins_and_scales, 1), q8s);
            acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);

            let sc128 = _mm256_extracti128_si256(mins_and_scales, 0);
            let scales = mm256_set_m128i(sc128, sc128);

            let mut sumi = _mm256_setzero_si256();

            for j in 0..QK_K / 64 {
                let scale_l = _mm256_shuffle_epi8(scales, get_scale_shuffle_k4(2 * j));
                let scale_h = _mm256_shuffle_epi8(scales, get_scale_shuffle_k4(2 * j + 1));

                let q4bits = _mm256_loadu_si256(q4 as *const __m256i);
                q4 = q4.add(32);
                let q4l = _mm256_and_si256(q4bits, m4);
                let q4h = _mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4);

                let q8l = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let p16l = _mm256_maddubs_epi16(q4l, q8l);
                let p16l = _mm256_madd_epi16(scale_l, p16l);
                sumi = _mm256_add_epi32(sumi, p16l);

                let q8h = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let p16h = _mm256_maddubs_epi16(q4h, q8h);
                let p16h = _mm256_madd_epi16(scale_h, p16h);
                sumi = _mm256_add_epi32(sumi, p16h);
            }

            let vd = _mm256_set1_ps(d);
            acc = _mm256_fmadd_ps(vd, _mm256_cvtepi32_ps(sumi), acc);
        }

        let acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
        let acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));

        hsum_float_8(acc) + _mm_cvtss_f32(acc_m)
    }
}

/// [perimeter patch] [`vec_dot_q4k_q8k`] for four activation rows at once: each weight block's
/// packed scales and minimums are decoded once and its nibbles unpacked once for the four rows
/// (upstream's matmul called the one-row kernel per row, redoing both). Every row's arithmetic
/// is the one-row kernel's, in the same order, so the results are identical to four calls. The
/// scaled sums go through `D` (one `vpdpwssd` with VNNI).
#[inline(always)]
pub(crate) fn vec_dot_q4k_q8k_x4<D: ByteDotOp>(n: usize, xs: &[BlockQ4K], ys: [&[BlockQ8K]; 4]) -> [f32; 4] {
    debug_assert!(
        n.is_multiple_of(QK_K),
        "vec_dot_q4k_q8k: {n} is not divisible by {QK_K}"
    );
    let ys = ys.map(|ys| &ys[..xs.len()]);
    let mut utmp = [0u32; 4];
    const KMASK1: u32 = 0x3f3f3f3f;
    const KMASK2: u32 = 0x0f0f0f0f;
    const KMASK3: u32 = 0x03030303;

    unsafe {
        let m4 = _mm256_set1_epi8(0xF);
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut acc_m = [_mm_setzero_ps(); 4];

        for (b, x) in xs.iter().enumerate() {
            let x_d = x.d.to_f32();
            let x_dmin = x.dmin.to_f32();

            LittleEndian::read_u32_into(&x.scales, &mut utmp[0..3]);
            utmp[3] = ((utmp[2] >> 4) & KMASK2) | (((utmp[1] >> 6) & KMASK3) << 4);
            let uaux = utmp[1] & KMASK1;
            utmp[1] = (utmp[2] & KMASK2) | (((utmp[0] >> 6) & KMASK3) << 4);
            utmp[2] = uaux;
            utmp[0] &= KMASK1;
            let mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32(
                utmp[3] as i32,
                utmp[2] as i32,
                utmp[1] as i32,
                utmp[0] as i32,
            ));
            let mins = _mm256_extracti128_si256(mins_and_scales, 1);
            let sc128 = _mm256_extracti128_si256(mins_and_scales, 0);
            let scales = mm256_set_m128i(sc128, sc128);

            for (r, acc_m) in acc_m.iter_mut().enumerate() {
                let y = &ys[r][b];
                let dmin = -y.d * x_dmin;
                let q8sums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
                let q8s = _mm_hadd_epi16(
                    _mm256_extracti128_si256(q8sums, 0),
                    _mm256_extracti128_si256(q8sums, 1),
                );
                let prod = _mm_madd_epi16(mins, q8s);
                *acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), *acc_m);
            }

            let mut sumi = [_mm256_setzero_si256(); 4];
            for j in 0..QK_K / 64 {
                let scale_l = _mm256_shuffle_epi8(scales, get_scale_shuffle_k4(2 * j));
                let scale_h = _mm256_shuffle_epi8(scales, get_scale_shuffle_k4(2 * j + 1));

                let q4bits = _mm256_loadu_si256(x.qs.as_ptr().add(32 * j) as *const __m256i);
                let q4l = _mm256_and_si256(q4bits, m4);
                let q4h = _mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4);

                for (r, sumi) in sumi.iter_mut().enumerate() {
                    let q8 = ys[r][b].qs.as_ptr().add(64 * j);
                    let q8l = _mm256_loadu_si256(q8 as *const __m256i);
                    *sumi = D::madd_acc(*sumi, scale_l, _mm256_maddubs_epi16(q4l, q8l));

                    let q8h = _mm256_loadu_si256(q8.add(32) as *const __m256i);
                    *sumi = D::madd_acc(*sumi, scale_h, _mm256_maddubs_epi16(q4h, q8h));
                }
            }

            for (r, acc) in acc.iter_mut().enumerate() {
                let vd = _mm256_set1_ps(ys[r][b].d * x_d);
                *acc = _mm256_fmadd_ps(vd, _mm256_cvtepi32_ps(sumi[r]), *acc);
            }
        }

        [0, 1, 2, 3].map(|r| {
            let acc_m = _mm_add_ps(acc_m[r], _mm_movehl_ps(acc_m[r], acc_m[r]));
            let acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
            hsum_float_8(acc[r]) + _mm_cvtss_f32(acc_m)
        })
    }
}

#[inline(always)]
pub(crate) fn vec_dot_q5k_q8k(n: usize, xs: &[BlockQ5K], ys: &[BlockQ8K]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK_K),
        "vec_dot_q5k_q8k: {n} is not divisible by {QK_K}"
    );
    let mut utmp = [0u32; 4];
    const KMASK1: u32 = 0x3f3f3f3f;
    const KMASK2: u32 = 0x0f0f0f0f;
    const KMASK3: u32 = 0x03030303;

    unsafe {
        let m4 = _mm256_set1_epi8(0xF);
        let mzero = _mm_setzero_si128();
        let mone = _mm256_set1_epi8(1);

        let mut acc = _mm256_setzero_ps();
        let mut summs = 0.0;

        for (x, y) in xs.iter().zip(ys.iter()) {
            let d = y.d * x.d.to_f32();
            let dmin = -y.d * x.dmin.to_f32();

            LittleEndian::read_u32_into(&x.scales, &mut utmp[0..3]);

            utmp[3] = ((utmp[2] >> 4) & KMASK2) | (((utmp[1] >> 6) & KMASK3) << 4);
            let uaux = utmp[1] & KMASK1;
            utmp[1] = (utmp[2] & KMASK2) | (((utmp[0] >> 6) & KMASK3) << 4);
            utmp[2] = uaux;
            utmp[0] &= KMASK1;

            let mut q5 = x.qs.as_ptr();
            let mut q8 = y.qs.as_ptr();

            let mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32(
                utmp[3] as i32,
                utmp[2] as i32,
                utmp[1] as i32,
                utmp[0] as i32,
            ));

            let q8sums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
            let q8s = _mm_hadd_epi16(
                _mm256_extracti128_si256(q8sums, 0),
                _mm256_extracti128_si256(q8sums, 1),
            );
            let prod = _mm_madd_epi16(_mm256_extracti128_si256(mins_and_scales, 1), q8s);
            let hsum = _mm_hadd_epi32(_mm_hadd_epi32(prod, mzero), mzero);
            summs += dmin * _mm_extract_epi32(hsum, 0) as f32;

            let sc128 = _mm256_extracti128_si256(mins_and_scales, 0);
            let scales = mm256_set_m128i(sc128, sc128);

            let hbits = _mm256_loadu_si256(x.qh.as_ptr() as *const __m256i);
            let mut hmask = mone;

            let mut sumi = _mm256_setzero_si256();

            for j in 0..QK_K / 64 {
                let scale_0 = _mm256_shuffle_epi8(scales, get_scale_shuffle_k4(2 * j));
                let scale_1 = _mm256_shuffle_epi8(scales, get_scale_shuffle_k4(2 * j + 1));

                let q5bits = _mm256_loadu_si256(q5 as *const __m256i);
                q5 = q5.add(32);

                //Similar to q3k we hardcode the shifts here to avoid loading them into a separate register
                let q5l_0 = _mm256_and_si256(q5bits, m4);
                let q5l_0_shift_input = _mm256_and_si256(hbits, hmask);
                let q5l_0_right_shift = match j {
                    0 => _mm256_srli_epi16(q5l_0_shift_input, 0),
                    1 => _mm256_srli_epi16(q5l_0_shift_input, 2),
                    2 => _mm256_srli_epi16(q5l_0_shift_input, 4),
                    3 => _mm256_srli_epi16(q5l_0_shift_input, 6),
                    _ => unreachable!(),
                };
                let q5h_0 = _mm256_slli_epi16(q5l_0_right_shift, 4);
                let q5_0 = _mm256_add_epi8(q5l_0, q5h_0);
                hmask = _mm256_slli_epi16(hmask, 1);

                let q5l_1 = _mm256_and_si256(_mm256_srli_epi16(q5bits, 4), m4);
                let q5l_1_shift_input = _mm256_and_si256(hbits, hmask);
                let q5l_1_right_shift = match j {
                    0 => _mm256_srli_epi16(q5l_1_shift_input, 1),
                    1 => _mm256_srli_epi16(q5l_1_shift_input, 3),
                    2 => _mm256_srli_epi16(q5l_1_shift_input, 5),
                    3 => _mm256_srli_epi16(q5l_1_shift_input, 7),
                    _ => unreachable!(),
                };

                let q5h_1 = _mm256_slli_epi16(q5l_1_right_shift, 4);
                let q5_1 = _mm256_add_epi8(q5l_1, q5h_1);
                hmask = _mm256_slli_epi16(hmask, 1);

                let q8_0 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);
                let q8_1 = _mm256_loadu_si256(q8 as *const __m256i);
                q8 = q8.add(32);

                let p16_0 = _mm256_maddubs_epi16(q5_0, q8_0);
                let p16_1 = _mm256_maddubs_epi16(q5_1, q8_1);

                let p16_0 = _mm256_madd_epi16(scale_0, p16_0);
                let p16_1 = _mm256_madd_epi16(scale_1, p16_1);

                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16_0, p16_1));
            }
            let vd = _mm256_set1_ps(d);
            acc = _mm256_fmadd_ps(vd, _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum_float_8(acc) + summs
    }
}

#[inline(always)]
pub(crate) fn vec_dot_q8k_q8k(n: usize, xs: &[BlockQ8K], ys: &[BlockQ8K]) -> f32 {
    debug_assert!(
        n.is_multiple_of(QK_K),
        "vec_dot_q8k_8k: {n} is not divisible by {QK_K}"
    );
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for (xs, ys) in xs.iter().zip(ys.iter()) {
            let mut sumi = _mm256_setzero_si256();
            let x_qs = xs.qs.as_ptr();
            let y_qs = ys.qs.as_ptr();
            for j in (0..QK_K).step_by(32) {
                let xs = _mm256_loadu_si256(x_qs.add(j) as *const __m256i);
                let ys = _mm256_loadu_si256(y_qs.add(j) as *const __m256i);

                let xs0 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(xs, 0));
                let ys0 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(ys, 0));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(xs0, ys0));

                let xs1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(xs, 1));
                let ys1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(ys, 1));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(xs1, ys1));
            }
            let d = _mm256_set1_ps(xs.d * ys.d);
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum_float_8(acc)
    }
}
