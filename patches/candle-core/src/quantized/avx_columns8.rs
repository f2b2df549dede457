//! [perimeter patch] Prompt tiles of Q4_K, Q5_0 and Q6_K weights, eight output columns at a time.
//!
//! In GGML's layout a 32-byte `maddubs` covers 32 weights of one column, so its 16-bit sums need a
//! `madd` of their own (to apply a sub-block's scale, or to widen them before the block's float
//! scale): two multiplies per 32 weights and row, what the GGML-layout kernels
//! (`avx::vec_dot_q4k_q8k_x4`, `avx::rows_q8_0`, `avx::vec_dot_q6k_q8k_x4`) are bound by. Here a
//! tile's weights are first copied into blocks of eight columns ([`Q4kColumns8`],
//! [`Q5_0Columns8`], [`Q6kColumns8`]): one vector holds four consecutive weights of eight
//! columns as unsigned bytes (or nibbles), so one `maddubs` against four activation bytes
//! (broadcast) gives products for eight columns, as many `maddubs` as cannot overflow add up in
//! 16 bits before one `madd`, and no horizontal sum is left at the end. The weights' offsets
//! (Q5_0's 16, Q6_K's 32, Q4_K's minimums) come off through the activations' block sums. The
//! copy costs a few hundred instructions per block of eight columns; a prompt tile runs every
//! activation row against it.
//!
//! The integer sums are exact, as in GGML's kernels; the float sums are accumulated in another
//! order (per column instead of per lane and then across lanes), so the results are within
//! rounding of `vec_dot`'s, not the same bits.

use super::avx::{q5_0_weights, q6k_weights_128, ByteDotOp};
use super::k_quants::{BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8K, BlockQ8_0, GgmlType, MatmulTile, QK_K};
use super::utils::get_scale_min_k4;

#[cfg(target_arch = "x86")]
use core::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

/// The columns one block of this layout holds.
const COLUMNS: usize = 8;

/// Activation rows run together against a block of eight columns: their sums take 12 of the 16
/// AVX2 registers (four rows × two integer sums and a float sum).
const ROWS: usize = 4;

/// A batch smaller than this takes the GGML-layout kernels: copying a block of eight columns
/// costs roughly what two rows' products with it do (counted in instructions, not measured).
const MIN_ROWS: usize = 8;

/// The tile's columns, eight at a time (the last few columns, fewer than eight, are left out),
/// copied block by block with `new`: group `g`'s blocks are `[g * blocks..(g + 1) * blocks]`.
#[inline(always)]
fn columns8<T: GgmlType, C>(tile: &MatmulTile<'_, T>, new: impl Fn([&[T]; COLUMNS], usize) -> C) -> Vec<C> {
    let first = tile.cols.start;
    (0..tile.cols.len() / COLUMNS)
        .flat_map(|g| {
            let cols: [&[T]; COLUMNS] = std::array::from_fn(|c| tile.rhs_col(first + COLUMNS * g + c));
            (0..tile.k_in_blocks()).map(move |b| (cols, b))
        })
        .map(|(cols, b)| new(cols, b))
        .collect()
}

/// Rows `from..` in groups of `R` against every group of eight columns, `prepare` computing what
/// the kernel needs of a group of rows once for all columns. Returns the first row left over.
#[inline(always)]
fn run_rows<T: GgmlType, C, P, const R: usize>(
    tile: &MatmulTile<'_, T>,
    columns: &[C],
    from: usize,
    prepare: impl Fn([&[T::VecDotType]; R]) -> P,
    kernel: impl Fn(&[C], [&[T::VecDotType]; R], &P) -> [[f32; COLUMNS]; R],
) -> usize {
    let first = tile.cols.start;
    let mut row = from;
    while row + R <= tile.m {
        let ys: [_; R] = std::array::from_fn(|i| tile.lhs_row(row + i));
        let prepared = prepare(ys);
        for (g, xs) in columns.chunks_exact(tile.k_in_blocks()).enumerate() {
            for (i, values) in kernel(xs, ys, &prepared).into_iter().enumerate() {
                for (c, v) in values.into_iter().enumerate() {
                    tile.write(row + i, first + COLUMNS * g + c, v);
                }
            }
        }
        row += R;
    }
    row
}

/// The tile's last columns (fewer than eight, which [`columns8`] leaves out), if any.
#[inline(always)]
fn rest_columns<'a, T: GgmlType>(tile: &MatmulTile<'a, T>) -> Option<MatmulTile<'a, T>> {
    let rest = tile.cols.end - tile.cols.len() % COLUMNS..tile.cols.end;
    (!rest.is_empty()).then(|| tile.with_cols(rest))
}

/// The eight columns' results of one row, from their float sums.
#[inline(always)]
unsafe fn lanes(acc: __m256) -> [f32; COLUMNS] {
    let mut out = [0f32; COLUMNS];
    _mm256_storeu_ps(out.as_mut_ptr(), acc);
    out
}

/// One Q4_K block (256 weights) of eight columns, laid out for [`rows_q4k`].
#[repr(C, align(32))]
pub(crate) struct Q4kColumns8 {
    /// `qs[4 * s + q]`, byte `4 * c + i`: weight `32 * s + 4 * q + i` of column `c` in the low
    /// nibble, weight `32 * s + 16 + 4 * q + i` in the high one (sub-block `s`, `q` < 4).
    qs: [[u32; COLUMNS]; 32],
    /// `scales[s]`, 16-bit lanes `2c` and `2c + 1`: the scale of sub-block `s` of column `c`.
    scales: [[i16; 2 * COLUMNS]; 8],
    /// `mins[p]`, 16-bit lanes `2c` and `2c + 1`: the minimums of sub-blocks `2p` and `2p + 1`.
    mins: [[i16; 2 * COLUMNS]; 4],
    d: [f32; COLUMNS],
    dmin: [f32; COLUMNS],
}

impl Q4kColumns8 {
    /// Block `b` of the eight columns `cols`.
    fn new(cols: [&[BlockQ4K]; COLUMNS], b: usize) -> Self {
        let mut out = Self {
            qs: [[0; COLUMNS]; 32],
            scales: [[0; 2 * COLUMNS]; 8],
            mins: [[0; 2 * COLUMNS]; 4],
            d: [0.0; COLUMNS],
            dmin: [0.0; COLUMNS],
        };
        for (c, col) in cols.iter().enumerate() {
            let x = &col[b];
            out.d[c] = x.d.to_f32();
            out.dmin[c] = x.dmin.to_f32();
            for s in 0..8 {
                let (scale, min) = get_scale_min_k4(s, &x.scales);
                out.scales[s][2 * c] = scale as i16;
                out.scales[s][2 * c + 1] = scale as i16;
                out.mins[s / 2][2 * c + s % 2] = min as i16;
            }
            // GGML: byte `32 * j + t` holds weight `64 * j + t` (sub-block 2j) in its low nibble
            // and weight `64 * j + 32 + t` (sub-block 2j + 1) in its high one.
            let word = |at: usize| u32::from_le_bytes(x.qs[at..at + 4].try_into().unwrap());
            for j in 0..4 {
                for q in 0..4 {
                    let (lo, hi) = (word(32 * j + 4 * q), word(32 * j + 16 + 4 * q));
                    out.qs[4 * (2 * j) + q][c] = (lo & 0x0F0F_0F0F) | ((hi & 0x0F0F_0F0F) << 4);
                    out.qs[4 * (2 * j + 1) + q][c] = ((lo >> 4) & 0x0F0F_0F0F) | (hi & 0xF0F0_F0F0);
                }
            }
        }
        out
    }
}

/// The dot products of `R` activation rows with eight columns of Q4_K weights (`xs`, block by
/// block): for each row, the eight columns' results.
///
/// # Safety
/// The CPU has AVX2 and `D`'s instructions; every row has at least `xs.len()` blocks.
#[inline(always)]
unsafe fn rows_q4k<D: ByteDotOp, const R: usize>(xs: &[Q4kColumns8], ys: [&[BlockQ8K]; R]) -> [[f32; COLUMNS]; R] {
    let ys = ys.map(|ys| &ys[..xs.len()]);
    let m4 = _mm256_set1_epi8(0xF);
    let mut acc = [_mm256_setzero_ps(); R];
    for (b, x) in xs.iter().enumerate() {
        let mut sums = [_mm256_setzero_si256(); R];
        for s in 0..8 {
            // 8 products of at most 15 · 128 in two lanes each: |sum| ≤ 30720 fits in 16 bits.
            let mut sums16 = [_mm256_setzero_si256(); R];
            for q in 0..4 {
                let w = _mm256_load_si256(x.qs[4 * s + q].as_ptr() as *const __m256i);
                let w_lo = _mm256_and_si256(w, m4);
                let w_hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), m4);
                for (r, sums16) in sums16.iter_mut().enumerate() {
                    let y = ys[r][b].qs.as_ptr().add(32 * s + 4 * q) as *const i32;
                    let y_lo = _mm256_set1_epi32(y.read_unaligned());
                    let y_hi = _mm256_set1_epi32(y.add(4).read_unaligned());
                    *sums16 = _mm256_add_epi16(*sums16, _mm256_maddubs_epi16(w_lo, y_lo));
                    *sums16 = _mm256_add_epi16(*sums16, _mm256_maddubs_epi16(w_hi, y_hi));
                }
            }
            let scales = _mm256_load_si256(x.scales[s].as_ptr() as *const __m256i);
            for (sums, sums16) in sums.iter_mut().zip(sums16) {
                *sums = D::madd_acc(*sums, scales, sums16);
            }
        }
        let d = _mm256_load_ps(x.d.as_ptr());
        let dmin = _mm256_load_ps(x.dmin.as_ptr());
        let mins = x.mins.map(|m| _mm256_load_si256(m.as_ptr() as *const __m256i));
        for (r, acc) in acc.iter_mut().enumerate() {
            let y = &ys[r][b];
            // The row's sums per sub-block of 32 (Q8_K keeps them per 16) as 16-bit pairs, each
            // pair against the eight columns' minimums of those two sub-blocks.
            let bsums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
            let pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
            let pairs = _mm256_broadcastsi128_si256(pairs);
            let mut min_sums = _mm256_madd_epi16(mins[0], _mm256_shuffle_epi32(pairs, 0x00));
            min_sums = D::madd_acc(min_sums, mins[1], _mm256_shuffle_epi32(pairs, 0x55));
            min_sums = D::madd_acc(min_sums, mins[2], _mm256_shuffle_epi32(pairs, 0xAA));
            min_sums = D::madd_acc(min_sums, mins[3], _mm256_shuffle_epi32(pairs, 0xFF));
            let y_d = _mm256_set1_ps(y.d);
            *acc = _mm256_fmadd_ps(_mm256_mul_ps(d, y_d), _mm256_cvtepi32_ps(sums[r]), *acc);
            *acc = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, y_d), _mm256_cvtepi32_ps(min_sums), *acc);
        }
    }
    acc.map(|acc| lanes(acc))
}

/// One task of `matmul` for Q4_K weights: a batch of at least [`MIN_ROWS`] rows against the
/// tile's columns eight at a time ([`Q4kColumns8`]); smaller batches and the columns left over
/// take `ggml_layout`, the tile of the GGML-layout kernels.
#[inline(always)]
pub(crate) fn matmul_tile_q4k<D: ByteDotOp>(tile: &MatmulTile<'_, BlockQ4K>, ggml_layout: impl Fn(&MatmulTile<'_, BlockQ4K>)) {
    if tile.m < MIN_ROWS || !tile.k.is_multiple_of(QK_K) {
        return ggml_layout(tile);
    }
    let columns = columns8(tile, Q4kColumns8::new);
    // SAFETY (both kernels): compiled for D's instructions (`with_byte_dot!`); rows of k / 256 blocks.
    let next_row = run_rows::<_, _, _, ROWS>(tile, &columns, 0, |_| (), |xs, ys, _| unsafe { rows_q4k::<D, ROWS>(xs, ys) });
    run_rows::<_, _, _, 1>(tile, &columns, next_row, |_| (), |xs, ys, _| unsafe { rows_q4k::<D, 1>(xs, ys) });
    if let Some(rest) = rest_columns(tile) {
        ggml_layout(&rest);
    }
}

/// One Q5_0 block (32 weights) of eight columns, laid out for [`rows_q5_0`].
#[repr(C, align(32))]
pub(crate) struct Q5_0Columns8 {
    /// `qs[t]`, byte `4 * c + i`: weight `4 * t + i` of column `c` plus 16 (0..=31, unsigned for
    /// `maddubs`; the 16 comes off through the activations' block sums).
    qs: [[u32; COLUMNS]; 8],
    d: [f32; COLUMNS],
}

impl Q5_0Columns8 {
    /// Block `b` of the eight columns `cols`.
    fn new(cols: [&[BlockQ5_0]; COLUMNS], b: usize) -> Self {
        let mut out = Self { qs: [[0; COLUMNS]; 8], d: [0.0; COLUMNS] };
        for (c, col) in cols.iter().enumerate() {
            let x = &col[b];
            out.d[c] = x.d.to_f32();
            let mut words = [0u32; 8];
            // SAFETY: this module is compiled with AVX2 only; `words` holds 32 bytes.
            unsafe {
                let weights = _mm256_add_epi8(q5_0_weights(x), _mm256_set1_epi8(16));
                _mm256_storeu_si256(words.as_mut_ptr() as *mut __m256i, weights);
            }
            for (t, word) in words.into_iter().enumerate() {
                out.qs[t][c] = word;
            }
        }
        out
    }
}

/// What [`rows_q5_0`] needs of a row's block beyond its quants: its scale as f32 and 16 times the
/// sum of its quants (the weights' offset of 16 times the activations).
#[inline(always)]
fn q8_0_rows<const R: usize>(ys: [&[BlockQ8_0]; R]) -> Vec<[(f32, i32); R]> {
    (0..ys[0].len())
        .map(|b| ys.map(|ys| (ys[b].d.to_f32(), 16 * ys[b].qs.iter().map(|&q| q as i32).sum::<i32>())))
        .collect()
}

/// The dot products of `R` activation rows with eight columns of Q5_0 weights (`xs`, block by
/// block), `rows[b]` being [`q8_0_rows`] of block `b`: for each row, the eight columns' results.
///
/// # Safety
/// The CPU has AVX2 and `D`'s instructions; every row has at least `xs.len()` blocks.
#[inline(always)]
unsafe fn rows_q5_0<D: ByteDotOp, const R: usize>(
    xs: &[Q5_0Columns8],
    ys: [&[BlockQ8_0]; R],
    rows: &[[(f32, i32); R]],
) -> [[f32; COLUMNS]; R] {
    let ys = ys.map(|ys| &ys[..xs.len()]);
    let rows = &rows[..xs.len()];
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); R];
    for (b, x) in xs.iter().enumerate() {
        // Two halves of four `maddubs` each: 8 products of at most 31 · 128 per 16-bit lane
        // (|sum| ≤ 31744) fit; all eight would not.
        let mut sums = [_mm256_setzero_si256(); R];
        for half in 0..2 {
            let mut sums16 = [_mm256_setzero_si256(); R];
            for t in 4 * half..4 * half + 4 {
                let w = _mm256_load_si256(x.qs[t].as_ptr() as *const __m256i);
                for (r, sums16) in sums16.iter_mut().enumerate() {
                    let y = _mm256_set1_epi32((ys[r][b].qs.as_ptr().add(4 * t) as *const i32).read_unaligned());
                    *sums16 = _mm256_add_epi16(*sums16, _mm256_maddubs_epi16(w, y));
                }
            }
            for (sums, sums16) in sums.iter_mut().zip(sums16) {
                *sums = D::madd_acc(*sums, ones, sums16);
            }
        }
        let d = _mm256_load_ps(x.d.as_ptr());
        for (r, acc) in acc.iter_mut().enumerate() {
            let (y_d, offset) = rows[b][r];
            let sums = _mm256_sub_epi32(sums[r], _mm256_set1_epi32(offset));
            *acc = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(y_d)), _mm256_cvtepi32_ps(sums), *acc);
        }
    }
    acc.map(|acc| lanes(acc))
}

/// One task of `matmul` for Q5_0 weights: a batch of at least [`MIN_ROWS`] rows against the
/// tile's columns eight at a time ([`Q5_0Columns8`]); smaller batches and the columns left over
/// take `ggml_layout`, the tile of the GGML-layout kernels.
#[inline(always)]
pub(crate) fn matmul_tile_q5_0<D: ByteDotOp>(tile: &MatmulTile<'_, BlockQ5_0>, ggml_layout: impl Fn(&MatmulTile<'_, BlockQ5_0>)) {
    if tile.m < MIN_ROWS {
        return ggml_layout(tile);
    }
    let columns = columns8(tile, Q5_0Columns8::new);
    // SAFETY (both kernels): compiled for D's instructions (`with_byte_dot!`); rows of k / 32 blocks.
    let next_row = run_rows::<_, _, _, ROWS>(tile, &columns, 0, q8_0_rows, |xs, ys, rows| unsafe {
        rows_q5_0::<D, ROWS>(xs, ys, rows)
    });
    run_rows::<_, _, _, 1>(tile, &columns, next_row, q8_0_rows, |xs, ys, rows| unsafe { rows_q5_0::<D, 1>(xs, ys, rows) });
    if let Some(rest) = rest_columns(tile) {
        ggml_layout(&rest);
    }
}

/// One Q6_K block (256 weights) of eight columns, laid out for [`rows_q6k`].
#[repr(C, align(32))]
pub(crate) struct Q6kColumns8 {
    /// `qs[t]`, byte `4 * c + i`: weight `4 * t + i` of column `c`, 0..=63 (unsigned for
    /// `maddubs`; its offset of 32 comes off through the activations' group sums).
    qs: [[u32; COLUMNS]; 64],
    /// `scales[g]`, 16-bit lanes `2c` and `2c + 1`: the scale of group `g` (16 weights) of column `c`.
    scales: [[i16; 2 * COLUMNS]; 16],
    /// `scale_pairs[p]`, 16-bit lanes `2c` and `2c + 1`: the scales of groups `2p` and `2p + 1`.
    scale_pairs: [[i16; 2 * COLUMNS]; 8],
    d: [f32; COLUMNS],
}

impl Q6kColumns8 {
    /// Block `b` of the eight columns `cols`.
    fn new(cols: [&[BlockQ6K]; COLUMNS], b: usize) -> Self {
        let mut out = Self {
            qs: [[0; COLUMNS]; 64],
            scales: [[0; 2 * COLUMNS]; 16],
            scale_pairs: [[0; 2 * COLUMNS]; 8],
            d: [0.0; COLUMNS],
        };
        for (c, col) in cols.iter().enumerate() {
            let x = &col[b];
            out.d[c] = x.d.to_f32();
            for (g, &scale) in x.scales.iter().enumerate() {
                out.scales[g][2 * c] = scale as i16;
                out.scales[g][2 * c + 1] = scale as i16;
                out.scale_pairs[g / 2][2 * c + g % 2] = scale as i16;
            }
            let mut words = [0u32; 64];
            // SAFETY: this module is compiled with AVX2 only; `words` holds 256 bytes.
            unsafe {
                for (v, weights) in q6k_weights(x).into_iter().enumerate() {
                    _mm256_storeu_si256(words.as_mut_ptr().add(8 * v) as *mut __m256i, weights);
                }
            }
            for (t, word) in words.into_iter().enumerate() {
                out.qs[t][c] = word;
            }
        }
        out
    }
}

/// A Q6_K block's 256 six-bit values (0..=63), 32 at a time in weight order.
#[inline(always)]
unsafe fn q6k_weights(x: &BlockQ6K) -> [__m256i; 8] {
    let (a, b) = (q6k_weights_128(x, 0), q6k_weights_128(x, 1));
    [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]
}

/// The dot products of `R` activation rows with eight columns of Q6_K weights (`xs`, block by
/// block): for each row, the eight columns' results.
///
/// # Safety
/// The CPU has AVX2 and `D`'s instructions; every row has at least `xs.len()` blocks.
#[inline(always)]
unsafe fn rows_q6k<D: ByteDotOp, const R: usize>(xs: &[Q6kColumns8], ys: [&[BlockQ8K]; R]) -> [[f32; COLUMNS]; R] {
    let ys = ys.map(|ys| &ys[..xs.len()]);
    let mut acc = [_mm256_setzero_ps(); R];
    for (b, x) in xs.iter().enumerate() {
        let mut sums = [_mm256_setzero_si256(); R];
        for g in 0..16 {
            let scales = _mm256_load_si256(x.scales[g].as_ptr() as *const __m256i);
            // Two `maddubs` a time: 4 products of at most 63 · 128 per 16-bit lane (|sum| ≤
            // 32256) fit; four would not.
            for half in 0..2 {
                let t = 4 * g + 2 * half;
                let w_0 = _mm256_load_si256(x.qs[t].as_ptr() as *const __m256i);
                let w_1 = _mm256_load_si256(x.qs[t + 1].as_ptr() as *const __m256i);
                for (r, sums) in sums.iter_mut().enumerate() {
                    let y = ys[r][b].qs.as_ptr().add(4 * t) as *const i32;
                    let p_0 = _mm256_maddubs_epi16(w_0, _mm256_set1_epi32(y.read_unaligned()));
                    let p_1 = _mm256_maddubs_epi16(w_1, _mm256_set1_epi32(y.add(1).read_unaligned()));
                    *sums = D::madd_acc(*sums, scales, _mm256_add_epi16(p_0, p_1));
                }
            }
        }
        let d = _mm256_load_ps(x.d.as_ptr());
        let pairs = x.scale_pairs.map(|p| _mm256_load_si256(p.as_ptr() as *const __m256i));
        for (r, acc) in acc.iter_mut().enumerate() {
            let y = &ys[r][b];
            // The offset: 32 · Σ scale · (the row's sum over the group), a pair of groups at a time.
            let bsums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
            let (lo, hi) = (_mm256_permute2x128_si256(bsums, bsums, 0x00), _mm256_permute2x128_si256(bsums, bsums, 0x11));
            let mut offsets = _mm256_madd_epi16(pairs[0], _mm256_shuffle_epi32(lo, 0x00));
            offsets = D::madd_acc(offsets, pairs[1], _mm256_shuffle_epi32(lo, 0x55));
            offsets = D::madd_acc(offsets, pairs[2], _mm256_shuffle_epi32(lo, 0xAA));
            offsets = D::madd_acc(offsets, pairs[3], _mm256_shuffle_epi32(lo, 0xFF));
            offsets = D::madd_acc(offsets, pairs[4], _mm256_shuffle_epi32(hi, 0x00));
            offsets = D::madd_acc(offsets, pairs[5], _mm256_shuffle_epi32(hi, 0x55));
            offsets = D::madd_acc(offsets, pairs[6], _mm256_shuffle_epi32(hi, 0xAA));
            offsets = D::madd_acc(offsets, pairs[7], _mm256_shuffle_epi32(hi, 0xFF));
            let sums = _mm256_sub_epi32(sums[r], _mm256_slli_epi32(offsets, 5));
            *acc = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(y.d)), _mm256_cvtepi32_ps(sums), *acc);
        }
    }
    acc.map(|acc| lanes(acc))
}

/// One task of `matmul` for Q6_K weights: a batch of at least [`MIN_ROWS`] rows against the
/// tile's columns eight at a time ([`Q6kColumns8`]); smaller batches and the columns left over
/// take `ggml_layout`, the tile of the GGML-layout kernels.
#[inline(always)]
pub(crate) fn matmul_tile_q6k<D: ByteDotOp>(tile: &MatmulTile<'_, BlockQ6K>, ggml_layout: impl Fn(&MatmulTile<'_, BlockQ6K>)) {
    if tile.m < MIN_ROWS || !tile.k.is_multiple_of(QK_K) {
        return ggml_layout(tile);
    }
    let columns = columns8(tile, Q6kColumns8::new);
    // SAFETY (both kernels): compiled for D's instructions (`with_byte_dot!`); rows of k / 256 blocks.
    let next_row = run_rows::<_, _, _, ROWS>(tile, &columns, 0, |_| (), |xs, ys, _| unsafe { rows_q6k::<D, ROWS>(xs, ys) });
    run_rows::<_, _, _, 1>(tile, &columns, next_row, |_| (), |xs, ys, _| unsafe { rows_q6k::<D, 1>(xs, ys) });
    if let Some(rest) = rest_columns(tile) {
        ggml_layout(&rest);
    }
}
