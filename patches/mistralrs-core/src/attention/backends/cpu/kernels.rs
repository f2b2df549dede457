//! [perimeter patch] The f32 arithmetic of the CPU attention, for a block of up to [`ROWS`]
//! query rows that share their keys and values: the scores of every row against a run of keys,
//! the softmax of a row of scores, and the rows' weighted sums of value rows.
//!
//! Both products are small matrix products, written as register-blocked micro-kernels: several
//! rows and several keys (or value columns) per step, so that every key and value row loaded is
//! used by all rows of the block, and enough independent sums are in flight to keep both FMA
//! units busy. With AVX2 and FMA enabled at compile time (the x86-64-v3 build) they use those
//! instructions directly; the compiler vectorised the plain loops the wrong way round (across
//! the four keys of a dot product, with shuffles). Elsewhere the portable versions below run;
//! a test checks that the two agree.

/// The most query rows attended together.
pub(super) const ROWS: usize = 4;

/// Rows of f32 values of length `len`, row `i` starting at `data[i * stride]`.
#[derive(Clone, Copy)]
pub(super) struct Rows<'a> {
    pub data: &'a [f32],
    pub stride: usize,
    pub len: usize,
}

impl<'a> Rows<'a> {
    #[inline(always)]
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.stride..][..self.len]
    }

    /// Panics unless rows `0..n` are in `data` (the SIMD kernels then read without checks).
    fn check(&self, n: usize) {
        if n > 0 {
            assert!((n - 1) * self.stride + self.len <= self.data.len(), "rows out of bounds");
        }
    }
}

/// `scores[r * n + j] = scale · (q_r · keys_j)` for `r < rows`, `j < n`; `q` holds `rows` rows
/// of `keys.len` values.
pub(super) fn scores(q: &[f32], rows: usize, keys: Rows, n: usize, scale: f32, scores: &mut [f32]) {
    let d = keys.len;
    assert!(rows <= ROWS && q.len() >= rows * d && scores.len() >= rows * n);
    keys.check(n);
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))]
    if d % 8 == 0 {
        // SAFETY: bounds checked above; the target features are enabled at compile time.
        unsafe { avx2::scores(q, rows, keys, n, scale, scores) };
        return;
    }
    portable::scores(q, rows, keys, n, scale, scores);
}

/// `out[r * dv + c] = Σ_j p[r * n + j] · values_j[c]` for `r < rows`, `j < n`, `c < dv`
/// (`dv = values.len`).
pub(super) fn weighted_sum(p: &[f32], rows: usize, n: usize, values: Rows, out: &mut [f32]) {
    let dv = values.len;
    assert!(rows <= ROWS && p.len() >= rows * n && out.len() >= rows * dv);
    values.check(n);
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))]
    if dv % 8 == 0 {
        // SAFETY: bounds checked above; the target features are enabled at compile time.
        unsafe { avx2::weighted_sum(p, rows, n, values, out) };
        return;
    }
    portable::weighted_sum(p, rows, n, values, out);
}

/// The f32 lanes of one AVX register; the portable loops work in groups of this many so that
/// they vectorise too.
const LANES: usize = 8;

/// The largest value (-inf for none), eight running maxima at a time.
pub(super) fn max(xs: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            lanes[i] = if c[i] > lanes[i] { c[i] } else { lanes[i] };
        }
    }
    chunks.remainder().iter().fold(lanes.into_iter().fold(f32::NEG_INFINITY, f32::max), |m, &x| m.max(x))
}

/// `a * b + c`, fused where the target has FMA (`mul_add` without it is a slow library call).
#[inline(always)]
fn fmadd(a: f32, b: f32, c: f32) -> f32 {
    if cfg!(target_feature = "fma") {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

#[inline(always)]
fn hsum(a: [f32; LANES]) -> f32 {
    ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]))
}

// 1.5·2^23: adding it rounds to an integer, which then sits in the low mantissa bits.
const EXP_SHIFT: f32 = 12_582_912.0;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes' expf polynomial, highest degree first.
const EXP_POLY: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5.000_000_1e-1];

/// e^x in plain f32 arithmetic (`f32::exp` is a library call per element). Range reduction
/// x = n·ln2 + r, |r| ≤ ln2/2, and Cephes' degree-6 polynomial for e^r: within 2 ulp of `expf`.
/// x below -87 (and -inf, a masked score) gives 0.
#[inline(always)]
pub(super) fn exp_f32(x: f32) -> f32 {
    let xc = x.clamp(-87.0, 88.0);
    let t = fmadd(xc, std::f32::consts::LOG2_E, EXP_SHIFT);
    let n = t - EXP_SHIFT;
    let r = fmadd(n, -LN2_LO, fmadd(n, -LN2_HI, xc));
    let p = EXP_POLY[1..].iter().fold(EXP_POLY[0], |p, &k| fmadd(p, r, k));
    let e_r = fmadd(p * r, r, r + 1.0);
    // 2^n from n's bits: n is in -126..=127, so the exponent field is in range.
    let n_bits = t.to_bits().wrapping_sub(EXP_SHIFT.to_bits());
    let two_n = f32::from_bits(n_bits.wrapping_add(127) << 23);
    if x < -87.0 {
        0.0
    } else {
        e_r * two_n
    }
}

/// `x ← e^(x - max)` for every score; returns their sum.
pub(super) fn exp_sub_in_place(xs: &mut [f32], max: f32) -> f32 {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))]
    // SAFETY: the target features are enabled at compile time.
    return unsafe { avx2::exp_sub_in_place(xs, max) };
    #[allow(unreachable_code)]
    portable::exp_sub_in_place(xs, max)
}

/// Plain loops: four independent sums per dot product, four value rows per pass over a row's
/// output.
mod portable {
    use super::{exp_f32, fmadd, hsum, Rows, LANES};

    pub fn exp_sub_in_place(xs: &mut [f32], max: f32) -> f32 {
        let mut sums = [0f32; LANES];
        let mut chunks = xs.chunks_exact_mut(LANES);
        for c in &mut chunks {
            for i in 0..LANES {
                c[i] = exp_f32(c[i] - max);
                sums[i] += c[i];
            }
        }
        let mut sum = hsum(sums);
        for x in chunks.into_remainder() {
            *x = exp_f32(*x - max);
            sum += *x;
        }
        sum
    }

    pub fn scores(q: &[f32], rows: usize, keys: Rows, n: usize, scale: f32, scores: &mut [f32]) {
        let d = keys.len;
        for r in 0..rows {
            let q = &q[r * d..][..d];
            for (j, s) in scores[r * n..][..n].iter_mut().enumerate() {
                *s = dot(q, keys.row(j)) * scale;
            }
        }
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; LANES];
        let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
        for (x, y) in ac.zip(bc) {
            for i in 0..LANES {
                acc[i] = fmadd(x[i], y[i], acc[i]);
            }
        }
        hsum(acc) + tail
    }

    pub fn weighted_sum(p: &[f32], rows: usize, n: usize, values: Rows, out: &mut [f32]) {
        let dv = values.len;
        for r in 0..rows {
            let (p, out) = (&p[r * n..][..n], &mut out[r * dv..][..dv]);
            out.fill(0.0);
            let mut j = 0;
            while j < n {
                let w: [f32; 4] = std::array::from_fn(|i| p.get(j + i).copied().unwrap_or(0.0));
                let v: [&[f32]; 4] = std::array::from_fn(|i| values.row((j + i).min(n - 1)));
                for (c, o) in out.iter_mut().enumerate() {
                    *o = fmadd(w[3], v[3][c], fmadd(w[2], v[2][c], fmadd(w[1], v[1][c], fmadd(w[0], v[0][c], *o))));
                }
                j += 4;
            }
        }
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))]
mod avx2 {
    use super::{exp_f32, Rows, EXP_POLY, EXP_SHIFT, LN2_HI, LN2_LO};
    use std::arch::x86_64::*;

    /// [`exp_f32`] of eight lanes, the same operations in the same order (so the same bits):
    /// the compiler turned the scalar version's final select into a branch and left the loop
    /// scalar.
    #[inline(always)]
    unsafe fn exp8(x: __m256) -> __m256 {
        let c = _mm256_set1_ps;
        let xc = _mm256_min_ps(_mm256_max_ps(x, c(-87.0)), c(88.0));
        let t = _mm256_fmadd_ps(xc, c(std::f32::consts::LOG2_E), c(EXP_SHIFT));
        let n = _mm256_sub_ps(t, c(EXP_SHIFT));
        let r = _mm256_fmadd_ps(n, c(-LN2_LO), _mm256_fmadd_ps(n, c(-LN2_HI), xc));
        let p = EXP_POLY[1..].iter().fold(c(EXP_POLY[0]), |p, &k| _mm256_fmadd_ps(p, r, c(k)));
        let e_r = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, c(1.0)));
        let n_bits = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(EXP_SHIFT.to_bits() as i32));
        let two_n = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n_bits, _mm256_set1_epi32(127)), 23));
        // 0 where x < -87 (and for -inf), like the scalar version.
        let keep = _mm256_cmp_ps(x, c(-87.0), _CMP_NLT_UQ);
        _mm256_and_ps(_mm256_mul_ps(e_r, two_n), keep)
    }

    pub unsafe fn exp_sub_in_place(xs: &mut [f32], max: f32) -> f32 {
        let maxv = _mm256_set1_ps(max);
        let mut sums = _mm256_setzero_ps();
        let mut chunks = xs.chunks_exact_mut(8);
        for c in &mut chunks {
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), maxv));
            _mm256_storeu_ps(c.as_mut_ptr(), e);
            sums = _mm256_add_ps(sums, e);
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), sums);
        let mut sum = super::hsum(lanes);
        for x in chunks.into_remainder() {
            *x = exp_f32(*x - max);
            sum += *x;
        }
        sum
    }

    /// The sums of four vectors' lanes: `[Σa, Σb, Σc, Σd]`.
    #[inline(always)]
    unsafe fn hsum4(a: __m256, b: __m256, c: __m256, d: __m256) -> __m128 {
        let ab = _mm256_hadd_ps(a, b);
        let cd = _mm256_hadd_ps(c, d);
        let abcd = _mm256_hadd_ps(ab, cd);
        _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1))
    }

    /// Rows × keys scores of one step: `R` query rows against keys `0..J` at `k`; `R·J` ≤ 8
    /// running sums, each key vector loaded once for the `R` rows.
    #[inline(always)]
    unsafe fn scores_step<const R: usize, const J: usize>(
        q: *const f32,
        d: usize,
        k: *const f32,
        stride: usize,
        out: *mut f32,
        n: usize,
        scale: __m128,
    ) {
        let mut acc = [[_mm256_setzero_ps(); J]; R];
        for c in (0..d).step_by(8) {
            let kv: [__m256; J] = std::array::from_fn(|j| _mm256_loadu_ps(k.add(j * stride + c)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let qv = _mm256_loadu_ps(q.add(r * d + c));
                for j in 0..J {
                    acc[j] = _mm256_fmadd_ps(qv, kv[j], acc[j]);
                }
            }
        }
        let zero = _mm256_setzero_ps();
        let flat = |i: usize| if i < R * J { acc[i / J][i % J] } else { zero };
        let mut sums = [0f32; 8];
        for g in (0..R * J).step_by(4) {
            let sum = hsum4(flat(g), flat(g + 1), flat(g + 2), flat(g + 3));
            _mm_storeu_ps(sums.as_mut_ptr().add(g), _mm_mul_ps(sum, scale));
        }
        for r in 0..R {
            for j in 0..J {
                *out.add(r * n + j) = sums[r * J + j];
            }
        }
    }

    unsafe fn scores_rows<const R: usize, const J: usize>(q: &[f32], keys: Rows, n: usize, scale: f32, scores: &mut [f32]) {
        let (d, stride, scale) = (keys.len, keys.stride, _mm_set1_ps(scale));
        let (q, k, out) = (q.as_ptr(), keys.data.as_ptr(), scores.as_mut_ptr());
        let mut j = 0;
        while j + J <= n {
            scores_step::<R, J>(q, d, k.add(j * stride), stride, out.add(j), n, scale);
            j += J;
        }
        for j in j..n {
            scores_step::<R, 1>(q, d, k.add(j * stride), stride, out.add(j), n, scale);
        }
    }

    /// Safety: the caller checked the bounds and that `keys.len` is a multiple of 8.
    pub unsafe fn scores(q: &[f32], rows: usize, keys: Rows, n: usize, scale: f32, scores: &mut [f32]) {
        match rows {
            1 => scores_rows::<1, 8>(q, keys, n, scale, scores),
            2 => scores_rows::<2, 4>(q, keys, n, scale, scores),
            3 => scores_rows::<3, 2>(q, keys, n, scale, scores),
            4 => scores_rows::<4, 2>(q, keys, n, scale, scores),
            _ => {}
        }
    }

    /// `R` rows' sums over value columns `col..col + 8·C`: `R·C` ≤ 8 running sums in registers
    /// while the value rows stream past; each weight is broadcast once per value row.
    #[inline(always)]
    unsafe fn weighted_step<const R: usize, const C: usize>(
        p: *const f32,
        n: usize,
        v: *const f32,
        stride: usize,
        out: *mut f32,
        dv: usize,
    ) {
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        for j in 0..n {
            let vv: [__m256; C] = std::array::from_fn(|c| _mm256_loadu_ps(v.add(j * stride + 8 * c)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let w = _mm256_broadcast_ss(&*p.add(r * n + j));
                for c in 0..C {
                    acc[c] = _mm256_fmadd_ps(w, vv[c], acc[c]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (c, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(out.add(r * dv + 8 * c), *a);
            }
        }
    }

    unsafe fn weighted_rows<const R: usize, const C: usize>(p: &[f32], n: usize, values: Rows, out: &mut [f32]) {
        let (dv, stride) = (values.len, values.stride);
        let (p, v, out) = (p.as_ptr(), values.data.as_ptr(), out.as_mut_ptr());
        let mut col = 0;
        while col + 8 * C <= dv {
            weighted_step::<R, C>(p, n, v.add(col), stride, out.add(col), dv);
            col += 8 * C;
        }
        while col < dv {
            weighted_step::<R, 1>(p, n, v.add(col), stride, out.add(col), dv);
            col += 8;
        }
    }

    /// Safety: the caller checked the bounds and that `values.len` is a multiple of 8.
    pub unsafe fn weighted_sum(p: &[f32], rows: usize, n: usize, values: Rows, out: &mut [f32]) {
        match rows {
            1 => weighted_rows::<1, 8>(p, n, values, out),
            2 => weighted_rows::<2, 4>(p, n, values, out),
            3 => weighted_rows::<3, 2>(p, n, values, out),
            4 => weighted_rows::<4, 2>(p, n, values, out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(i: usize) -> f32 {
        ((i * 7919 % 1009) as f32 / 1009.0 - 0.5) * 2.0
    }

    /// The dispatching kernels (SIMD here) against the portable loops, for every block height,
    /// lengths that leave tails, and strided rows.
    #[test]
    fn kernels_match_portable_loops() {
        for d in [8, 24, 64, 72] {
            for rows in 1..=ROWS {
                for n in [1, 2, 3, 7, 8, 9, 33] {
                    let stride = d + 8;
                    let q: Vec<f32> = (0..rows * d).map(pseudo).collect();
                    let kv: Vec<f32> = (0..n * stride).map(|i| pseudo(i + 1000)).collect();
                    let keys = Rows { data: &kv, stride, len: d };
                    let (mut got, mut want) = (vec![0f32; rows * n], vec![0f32; rows * n]);
                    scores(&q, rows, keys, n, 0.125, &mut got);
                    portable::scores(&q, rows, keys, n, 0.125, &mut want);
                    for (g, w) in got.iter().zip(&want) {
                        assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "scores d={d} rows={rows} n={n}: {g} vs {w}");
                    }
                    let p: Vec<f32> = (0..rows * n).map(|i| pseudo(i + 7).abs()).collect();
                    let (mut got, mut want) = (vec![0f32; rows * d], vec![0f32; rows * d]);
                    weighted_sum(&p, rows, n, keys, &mut got);
                    portable::weighted_sum(&p, rows, n, keys, &mut want);
                    for (g, w) in got.iter().zip(&want) {
                        assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "weighted d={d} rows={rows} n={n}: {g} vs {w}");
                    }
                }
            }
        }
    }

    #[test]
    fn exp_f32_is_within_two_ulp_of_expf() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp_f32(x), x.exp());
            let ulp = (want.to_bits() as i64 - got.to_bits() as i64).abs();
            assert!(ulp <= 2, "exp({x}) = {got}, expf says {want} ({ulp} ulp)");
            x += 0.0137;
        }
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(0.0), 1.0);
    }

    #[test]
    fn exp_sub_in_place_gives_exp_f32_bit_for_bit() {
        // Scores minus their maximum are at most 0: here -110..10, past the -87 cut-off too.
        let max = 3.5;
        let xs: Vec<f32> = (0..1000).map(|i| pseudo(i) * 60.0 - 50.0 + max).chain([f32::NEG_INFINITY, max - 87.0, max]).collect();
        let mut got = xs.clone();
        let sum = exp_sub_in_place(&mut got, max);
        for (x, g) in xs.iter().zip(&got) {
            assert_eq!(g.to_bits(), exp_f32(x - max).to_bits(), "exp({x} - {max})");
        }
        let want: f64 = got.iter().map(|&g| g as f64).sum();
        assert!((sum as f64 - want).abs() <= 1e-5 * want, "sum {sum} vs {want}");
        let mut portable_out = xs.clone();
        assert!((portable::exp_sub_in_place(&mut portable_out, max) - sum).abs() <= 1e-5 * sum);
        assert_eq!(portable_out, got);
    }

    #[test]
    fn max_finds_the_largest_and_ignores_no_lane() {
        for n in 0..20 {
            let xs: Vec<f32> = (0..n).map(pseudo).collect();
            assert_eq!(max(&xs), xs.iter().copied().fold(f32::NEG_INFINITY, f32::max), "n={n}");
        }
    }
}
