#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

use candle_core::{Context, Device, Result, Storage, Tensor, WithDType};

use half::bf16;
use half::f16;
use rayon::prelude::*;
use rayon::ThreadPool;

use std::sync::LazyLock;
use std::{f32, iter::Sum};

use crate::attention::SdpaParams;

#[cfg(target_os = "macos")]
/// Elevate the thread QoS so macOS prefers running it on Performance (P) cores.
unsafe fn set_thread_affinity() {
    // USER_INTERACTIVE has the highest scheduling priority that user code
    // can request and is most likely to be scheduled on P‑cores.
    use libc::{pthread_set_qos_class_self_np, qos_class_t::QOS_CLASS_USER_INTERACTIVE};
    // The second argument is a relative priority within the QoS class (0 = default).
    pthread_set_qos_class_self_np(QOS_CLASS_USER_INTERACTIVE, 0);
}

#[cfg(not(target_os = "macos"))]
#[inline(always)]
unsafe fn set_thread_affinity() {
    // On non‑macOS platforms we currently leave affinity untouched.
}

/// Rayon pool used by the flash‑attention CPU kernels, with a per‑thread
/// start handler that applies our affinity hint exactly once.
static FLASH_ATTN_POOL: LazyLock<ThreadPool> = LazyLock::new(|| {
    rayon::ThreadPoolBuilder::new()
        .start_handler(|_| unsafe {
            set_thread_affinity();
        })
        .build()
        .expect("Failed to build custom Rayon thread‑pool for flash‑attention")
});

/// Size (in KV positions) processed by each inner‑tile job.
const TILE_KV: usize = 16;

mod kernels;
use kernels::{Rows, ROWS};

/// [perimeter patch] How many consecutive query positions of a prompt are attended as one
/// block. A block's softmax sums run over the positions up to its last row, so a row's result
/// depends (in the last bits) on where its block ends: a prompt of two or more positions that
/// starts at a multiple of this (after a prefix-cache hit cut to one) is computed in the same
/// blocks, to the bit, as the whole prompt computed fresh. (A single position takes the decode
/// path, which sums in tiles: not the same bits either.)
pub(crate) const PROMPT_BLOCK_ROWS: usize = ROWS;

/// [perimeter patch] Attention of a block of up to [`ROWS`] query rows that share their keys
/// and values (consecutive positions of one head while prompting, the query heads of one KV
/// head while decoding) over the KV positions `kv`, in three passes: the scaled scores of every
/// row (one matrix product, each key loaded once for the block), then per row the soft cap,
/// mask, maximum and one exponential pass, then the rows' weighted sums of the value rows (a
/// second product). Upstream walked the positions one at a time per row, with an online
/// softmax that rescaled the accumulator whenever the maximum grew and an `expf` call per
/// position; this is the same softmax, summed in another order.
///
/// `scratch.q` holds the block's query rows in f32; `keys` and `values` start at position
/// `kv.start`. `scratch.acc` gets each row's Σ e^(s_j - max)·v_j (not yet divided); the return
/// value holds each row's (max, Σ e^(s_j - max)), what merging partial results over several KV
/// ranges needs. A row whose positions are all masked gets (-inf, 0) and zeros.
fn attend_block<T: UpcastF32 + Copy>(
    rows: usize,
    keys: Rows,
    values: Rows,
    kv: std::ops::Range<usize>,
    masks: &[Option<(MaskRow<T>, f32)>; ROWS],
    (scale, logit_softcap): (f32, f32),
    scratch: &mut BlockScratch,
) -> [(f32, f32); ROWS] {
    let n = kv.len();
    let scores = &mut scratch.scores;
    scores.resize(rows * n, 0.0);
    // The scale is applied in the kernel, except under a soft cap (which needs the raw product).
    let kernel_scale = if logit_softcap != 0.0 { 1.0 } else { scale };
    kernels::scores(&scratch.q, rows, keys, n, kernel_scale, scores);
    let mut stats = [(f32::NEG_INFINITY, 0.0); ROWS];
    for (r, stats) in stats.iter_mut().enumerate().take(rows) {
        let s = &mut scores[r * n..][..n];
        if logit_softcap != 0.0 {
            s.iter_mut().for_each(|s| *s = logit_softcap * (*s * scale / logit_softcap).tanh());
        }
        if let Some((mask, slope)) = &masks[r] {
            mask.add_to(s, kv.start, *slope, &mut scratch.mask);
        }
        let max = kernels::max(s);
        *stats = if max == f32::NEG_INFINITY {
            s.fill(0.0);
            (max, 0.0)
        } else {
            (max, kernels::exp_sub_in_place(s, max))
        };
    }
    scratch.acc.resize(rows * values.len, 0.0);
    kernels::weighted_sum(scores, rows, n, values, &mut scratch.acc);
    stats
}

/// [perimeter patch] Per-task buffers of [`attend_block`], reused from block to block: the
/// block's query rows in f32, its scores, one mask row in f32 and the weighted sums.
#[derive(Default)]
struct BlockScratch {
    q: Vec<f32>,
    scores: Vec<f32>,
    mask: Vec<f32>,
    acc: Vec<f32>,
}

/// [perimeter patch] `acc / sum` into `out`, zeros for a row whose positions were all masked.
fn write_normalised<T: DowncastF32>(out: &mut [T], acc: &[f32], sum: f32) {
    let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
    for (o, a) in out.iter_mut().zip(acc) {
        *o = T::cast(a * inv);
    }
}

/// [perimeter patch] The ALiBi slope of head `h_i` of `h` (1 without a bias).
fn alibi_slope(max_bias: f32, h: usize, h_i: usize) -> f32 {
    if max_bias > 0.0 {
        let n2 = 2_usize.pow((h as f32).log2().ceil() as u32);
        2.0f32.powf(-max_bias * ((h_i + 1) as f32) / n2 as f32)
    } else {
        1.0
    }
}

/// [perimeter patch] `src` as `f32` into `dst`, reusing its allocation.
fn upcast_into<T: UpcastF32 + Copy>(dst: &mut Vec<f32>, src: &[T]) {
    dst.resize(src.len(), 0.0);
    T::upcast_slice(src, dst);
}

/// The number of elements a (B, S, H, D) tensor with these strides spans.
fn spanned_len(shape: &[usize], stride: &[usize]) -> usize {
    if shape.iter().any(|&n| n == 0) {
        return 0;
    }
    1 + shape.iter().zip(stride).map(|(&n, &s)| (n - 1) * s).sum::<usize>()
}

#[inline]
fn clamp_index(idx: usize, dim: usize) -> usize {
    if dim == 0 {
        0
    } else if idx >= dim {
        dim - 1
    } else {
        idx
    }
}

#[inline]
fn mask_offset(
    dims: &[usize],
    b: usize,
    h: usize,
    b_i: usize,
    h_i: usize,
    q_pos: usize,
    kv_pos: usize,
) -> Option<usize> {
    if dims.is_empty() {
        return Some(0);
    }

    match dims.len() {
        1 => {
            let kv_dim = dims[0];
            if kv_dim == 0 {
                None
            } else {
                Some(clamp_index(kv_pos, kv_dim))
            }
        }
        2 => {
            let q_dim = dims[0];
            let kv_dim = dims[1];
            if q_dim == 0 || kv_dim == 0 {
                None
            } else {
                let q_idx = clamp_index(q_pos, q_dim);
                let kv_idx = clamp_index(kv_pos, kv_dim);
                Some(q_idx * kv_dim + kv_idx)
            }
        }
        3 => {
            let d0 = dims[0];
            let d1 = dims[1];
            let d2 = dims[2];
            if d0 == 0 || d1 == 0 || d2 == 0 {
                return None;
            }
            let q_idx = clamp_index(q_pos, d1);
            let kv_idx = clamp_index(kv_pos, d2);
            if d0 == b || d0 == 1 {
                let b_idx = if d0 == 1 { 0 } else { clamp_index(b_i, d0) };
                Some((b_idx * d1 + q_idx) * d2 + kv_idx)
            } else if d0 == h || d0 == 1 {
                let h_idx = if d0 == 1 { 0 } else { clamp_index(h_i, d0) };
                Some((h_idx * d1 + q_idx) * d2 + kv_idx)
            } else if d0 == b.saturating_mul(h) {
                let combined_idx = clamp_index(b_i * h + h_i, d0);
                Some((combined_idx * d1 + q_idx) * d2 + kv_idx)
            } else {
                Some(q_idx * d2 + kv_idx)
            }
        }
        4 => {
            let d0 = dims[0];
            let d1 = dims[1];
            let d2 = dims[2];
            let d3 = dims[3];
            if d0 == 0 || d1 == 0 || d2 == 0 || d3 == 0 {
                return None;
            }
            let b_idx = if d0 == 1 {
                0
            } else if d0 == b {
                clamp_index(b_i, d0)
            } else if d0 == b.saturating_mul(h) {
                clamp_index(b_i * h + h_i, d0)
            } else {
                clamp_index(b_i, d0)
            };
            let h_idx = if d1 == 1 {
                0
            } else if d1 == h {
                clamp_index(h_i, d1)
            } else if d1 == b {
                clamp_index(b_i, d1)
            } else {
                clamp_index(h_i, d1)
            };
            let q_idx = clamp_index(q_pos, d2);
            let kv_idx = clamp_index(kv_pos, d3);
            Some(((b_idx * d1 + h_idx) * d2 + q_idx) * d3 + kv_idx)
        }
        _ => {
            let q_dim = *dims.get(dims.len().saturating_sub(2))?;
            let kv_dim = *dims.last()?;
            if q_dim == 0 || kv_dim == 0 {
                return None;
            }
            let q_idx = clamp_index(q_pos, q_dim);
            let kv_idx = clamp_index(kv_pos, kv_dim);
            let mut prefix_dim = 1usize;
            for &dim in &dims[..dims.len() - 2] {
                if dim == 0 {
                    return None;
                }
                prefix_dim = prefix_dim.saturating_mul(dim);
            }
            let combined_idx = if prefix_dim == 0 {
                0
            } else {
                let idx_val = b_i * h + h_i;
                idx_val.min(prefix_dim - 1)
            };
            Some((combined_idx * q_dim + q_idx) * kv_dim + kv_idx)
        }
    }
}

/// [perimeter patch] The mask in its own element type: upstream copied the whole
/// q_len × kv_len mask into a new f32 buffer in every layer (64 MB per layer for a
/// 4000-token prompt); rows are now converted as they are used.
struct MaskInfo<'a, T> {
    data: &'a [T],
    dims: &'a [usize],
    b: usize,
    h: usize,
}

impl<'a, T: UpcastF32 + Copy> MaskInfo<'a, T> {
    /// [perimeter patch] The mask of one query row. The kv position is always the mask's
    /// innermost, contiguous index (clamped to its length), so one offset computation serves
    /// the whole row; upstream computed the offset for every (query, kv) pair.
    fn row(&self, b_i: usize, h_i: usize, q_pos: usize) -> MaskRow<'a, T> {
        let len = self.dims.last().copied().unwrap_or(1);
        match mask_offset(self.dims, self.b, self.h, b_i, h_i, q_pos, 0) {
            Some(start) if len > 0 => MaskRow { data: self.data.get(start..).unwrap_or(&[]), len },
            _ => MaskRow { data: &[], len: 1 },
        }
    }
}

/// [perimeter patch] One query row of the mask (see [`MaskInfo::row`]).
#[derive(Clone, Copy)]
struct MaskRow<'a, T> {
    data: &'a [T],
    len: usize,
}

impl<T: UpcastF32 + Copy> MaskRow<'_, T> {
    #[inline]
    fn value(&self, kv_pos: usize) -> f32 {
        self.data.get(kv_pos.min(self.len - 1)).map_or(0.0, |m| m.to_f32())
    }

    /// `scores[i] += slope · mask[kv_start + i]`; `buf` holds the row's values in f32.
    fn add_to(&self, scores: &mut [f32], kv_start: usize, slope: f32, buf: &mut Vec<f32>) {
        let end = kv_start + scores.len();
        match self.data.get(kv_start..end) {
            Some(row) if end <= self.len => {
                buf.resize(row.len(), 0.0);
                T::upcast_slice(row, buf);
                scores.iter_mut().zip(buf.iter()).for_each(|(s, m)| *s += slope * m);
            }
            _ => scores.iter_mut().enumerate().for_each(|(i, s)| *s += slope * self.value(kv_start + i)),
        }
    }

    /// `0..kv_len` without the fully masked positions at either end (a causal mask hides
    /// everything after the query's own position), which need no scores at all. Eight
    /// positions at a time where the row is long enough.
    fn live_range(&self, kv_len: usize) -> std::ops::Range<usize> {
        const CHUNK: usize = 8;
        let all_masked = |from: usize| {
            let mut vals = [0f32; CHUNK];
            T::upcast_slice(&self.data[from..from + CHUNK], &mut vals);
            vals.iter().fold(true, |all, &v| all & (v == f32::NEG_INFINITY))
        };
        let in_row = kv_len.min(self.len).min(self.data.len());
        let masked = |j: usize| self.value(j) == f32::NEG_INFINITY;
        let mut end = kv_len;
        // Positions past the row's length repeat its last value.
        while end > in_row && masked(end - 1) {
            end -= 1;
        }
        if end <= in_row {
            while end >= CHUNK && all_masked(end - CHUNK) {
                end -= CHUNK;
            }
        }
        while end > 0 && masked(end - 1) {
            end -= 1;
        }
        let mut start = 0;
        while start + CHUNK <= end.min(in_row) && all_masked(start) {
            start += CHUNK;
        }
        while start < end && masked(start) {
            start += 1;
        }
        start..end
    }
}

pub(crate) trait DowncastF32 {
    fn cast(x: f32) -> Self;
}

impl DowncastF32 for f32 {
    fn cast(x: f32) -> Self {
        x
    }
}

impl DowncastF32 for f16 {
    fn cast(x: f32) -> Self {
        f16::from_f32(x)
    }
}

impl DowncastF32 for bf16 {
    fn cast(x: f32) -> Self {
        bf16::from_f32(x)
    }
}

/// Up‑cast helper: convert any supported element type to `f32` once so that the
/// hot kernels can run entirely in `f32` and only down‑cast when writing out.
pub trait UpcastF32 {
    fn to_f32(self) -> f32;

    /// [perimeter patch] `src` into `dst` (same length); f16 and bf16 override this with
    /// `half`'s slice conversion, which uses SIMD instructions.
    fn upcast_slice(src: &[Self], dst: &mut [f32])
    where
        Self: Sized + Copy,
    {
        dst.iter_mut().zip(src).for_each(|(d, s)| *d = s.to_f32());
    }
}

impl UpcastF32 for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl UpcastF32 for f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self.to_f32()
    }

    fn upcast_slice(src: &[Self], dst: &mut [f32]) {
        half::slice::HalfFloatSliceExt::convert_to_f32_slice(src, dst);
    }
}

impl UpcastF32 for bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self.to_f32()
    }

    fn upcast_slice(src: &[Self], dst: &mut [f32]) {
        half::slice::HalfFloatSliceExt::convert_to_f32_slice(src, dst);
    }
}

pub fn run_flash_attn_cpu<T>(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    sdpa_params: &SdpaParams,
) -> Result<Tensor>
where
    T: WithDType + Sum + num_traits::real::Real + DowncastF32 + UpcastF32 + Copy,
{
    // Inline CPU slice extraction for q, k, v, and optional mask
    let (q_guard, q_layout) = q.storage_and_layout();
    let q_data: &[T] = if let Storage::Cpu(cpu) = &*q_guard {
        let data = cpu.as_slice::<T>().context("Expected CPU storage for q")?;
        &data[q_layout.start_offset()..]
    } else {
        return Err(candle_core::Error::Msg("Expected CPU storage for q".into()));
    };
    let (k_guard, k_layout) = k.storage_and_layout();
    let k_data: &[T] = if let Storage::Cpu(cpu) = &*k_guard {
        let data = cpu.as_slice::<T>().context("Expected CPU storage for k")?;
        &data[k_layout.start_offset()..]
    } else {
        return Err(candle_core::Error::Msg("Expected CPU storage for k".into()));
    };
    let (v_guard, v_layout) = v.storage_and_layout();
    let v_data: &[T] = if let Storage::Cpu(cpu) = &*v_guard {
        let data = cpu.as_slice::<T>().context("Expected CPU storage for v")?;
        &data[v_layout.start_offset()..]
    } else {
        return Err(candle_core::Error::Msg("Expected CPU storage for v".into()));
    };
    // [perimeter patch] The mask is read in place, in its own type (see `MaskInfo`).
    let mask_guard = mask.map(|mask| mask.storage_and_layout());
    let mask_dims = mask.map(|mask| mask.shape().dims().to_vec());
    let mask_slice: Option<&[T]> = match &mask_guard {
        Some((guard, layout)) => match &**guard {
            Storage::Cpu(cpu) => Some(
                &cpu.as_slice::<T>().context("Expected CPU storage for mask")?[layout.start_offset()..],
            ),
            _ => return Err(candle_core::Error::Msg("Expected CPU storage for mask".into())),
        },
        None => None,
    };
    // q_guard, k_guard, v_guard, and m_guard (if any) are kept in scope to hold storage alive

    let q_stride = q.stride();
    let k_stride = k.stride();
    let v_stride = v.stride();

    // Fast path for decode: q_len == 1
    let mask_dims_ref = mask_dims.as_deref();

    if q.shape().dims()[1] == 1 {
        return flash_attn_cpu_single_q(
            q_data,
            k_data,
            v_data,
            mask_slice,
            mask_dims_ref,
            q.shape().dims(),
            k.shape().dims(),
            v.shape().dims(),
            q_stride,
            k_stride,
            v_stride,
            sdpa_params.softmax_scale,
            0.0,
            sdpa_params.softcap.unwrap_or(0.0),
        );
    }

    flash_attn_cpu(
        q_data,
        k_data,
        v_data,
        mask_slice,
        mask_dims_ref,
        q.shape().dims(),
        k.shape().dims(),
        v.shape().dims(),
        q_stride,
        k_stride,
        v_stride,
        sdpa_params.softmax_scale,
        0.0,
        sdpa_params.softcap.unwrap_or(0.0),
    )
}

/// Optimised path for the common decode case: q_len == 1 but kv_len ≫ 1.
/// All intermediate maths is done in `f32`; we down‑cast to `T` exactly once
/// when writing the output buffer.
#[allow(clippy::too_many_arguments)]
fn flash_attn_cpu_single_q<T>(
    q_data: &[T],
    k_data: &[T],
    v_data: &[T],
    mask_vec: Option<&[T]>,
    mask_dims: Option<&[usize]>,
    qshape: &[usize],
    kshape: &[usize],
    vshape: &[usize],
    qstride: &[usize],
    kstride: &[usize],
    vstride: &[usize],
    scale: f32,
    max_bias: f32,
    logit_softcap: f32,
) -> Result<Tensor>
where
    T: WithDType + Copy + UpcastF32 + DowncastF32,
{
    let (b, _q_len, h, d) = (qshape[0], qshape[1], qshape[2], qshape[3]);
    let kv_len = kshape[1];
    // [perimeter patch] Tiles of at least TILE_KV positions, a few per thread: fewer, longer
    // tiles than upstream's fixed 16 at long contexts (less per-tile work and merging).
    let tile_kv = (kv_len / (4 * FLASH_ATTN_POOL.current_num_threads())).clamp(TILE_KV, 256);
    let kv_tiles = kv_len.div_ceil(tile_kv);
    let dv = d;

    // --- head tiling factors and softmax helper -----------------------
    let k_h = kshape[2];
    let v_h = vshape[2];
    let rk2 = h / k_h;
    let rv2 = h / v_h;

    // final output
    let mut out = vec![T::cast(0.0); b * h * dv];
    // scratch: one tile  ×  heads ×  dv  (flattened)
    // [perimeter patch] one slot per (tile, batch, head): upstream's slots ignored the batch
    // index, so with several sequences decoded together (b > 1) they overwrote each other.
    // Each tile's slots are contiguous, so tasks get them as disjoint chunks.
    let mut scratch = vec![0f32; kv_tiles * b * h * dv];
    let mut scratch_s = vec![0f32; kv_tiles * b * h]; // softmax S per tile
    let mut scratch_m = vec![f32::NEG_INFINITY; kv_tiles * b * h];

    let mask_info = match (mask_vec, mask_dims) {
        (Some(data), Some(dims)) => Some(MaskInfo { data, dims, b, h }),
        _ => None,
    };

    FLASH_ATTN_POOL.install(|| {
        // [perimeter patch] Per task: the tile's K and V rows in f32 (converted once per KV
        // head, not once per query head and element) and the block buffers. The query heads
        // that share a KV head are attended as one block.
        let buffers = || (Vec::new(), Vec::new(), BlockScratch::default());
        let tiles = scratch.par_chunks_mut(b * h * dv).zip(scratch_s.par_chunks_mut(b * h)).zip(scratch_m.par_chunks_mut(b * h));
        tiles.enumerate().for_each_init(buffers, |(k_tile, v_tile, block), (tile_idx, ((acc_slots, s_slots), m_slots))| {
            let start = tile_idx * tile_kv;
            let end = (start + tile_kv).min(kv_len);
            // The tile's rows of one KV head, in f32, packed.
            let load_tile = |tile: &mut Vec<f32>, data: &[T], stride: &[usize], b_i: usize, head: usize| {
                tile.resize((end - start) * d, 0.0);
                for (pos, row) in (start..end).zip(tile.chunks_exact_mut(d)) {
                    let base = b_i * stride[0] + pos * stride[1] + head * stride[2];
                    T::upcast_slice(&data[base..base + d], row);
                }
            };
            let (mut k_loaded, mut v_loaded) = (None, None);

            for b_i in 0..b {
                let mut h0 = 0;
                while h0 < h {
                    let (k_head, v_head) = (h0 / rk2, h0 / rv2);
                    let mut rows = 1;
                    while rows < ROWS && h0 + rows < h && (h0 + rows) / rk2 == k_head && (h0 + rows) / rv2 == v_head {
                        rows += 1;
                    }
                    if k_loaded != Some((b_i, k_head)) {
                        load_tile(k_tile, k_data, kstride, b_i, k_head);
                        k_loaded = Some((b_i, k_head));
                    }
                    if v_loaded != Some((b_i, v_head)) {
                        load_tile(v_tile, v_data, vstride, b_i, v_head);
                        v_loaded = Some((b_i, v_head));
                    }

                    block.q.resize(rows * d, 0.0);
                    let mut masks = [None; ROWS];
                    for r in 0..rows {
                        let q_base = b_i * qstride[0] + (h0 + r) * qstride[2];
                        T::upcast_slice(&q_data[q_base..q_base + d], &mut block.q[r * d..][..d]);
                        masks[r] = mask_info.as_ref().map(|mask| (mask.row(b_i, h0 + r, 0), alibi_slope(max_bias, h, h0 + r)));
                    }
                    let keys = Rows { data: k_tile, stride: d, len: d };
                    let values = Rows { data: v_tile, stride: dv, len: dv };
                    let stats = attend_block(rows, keys, values, start..end, &masks, (scale, logit_softcap), block);

                    for (r, &(m, s)) in stats.iter().enumerate().take(rows) {
                        let slot = b_i * h + h0 + r;
                        acc_slots[slot * dv..][..dv].copy_from_slice(&block.acc[r * dv..][..dv]);
                        s_slots[slot] = s;
                        m_slots[slot] = m;
                    }
                    h0 += rows;
                }
            }
        });
    });

    // -------- serial reduction over tiles (per head) --------
    for b_i in 0..b {
        for h_i in 0..h {
            let out_off = (b_i * h + h_i) * dv;

            // start with tile 0
            let slot = |tile_idx: usize| (tile_idx * b + b_i) * h + h_i;
            let mut vkq = vec![0f32; dv];
            vkq.copy_from_slice(&scratch[slot(0) * dv..][..dv]);
            let mut s = scratch_s[slot(0)];
            let mut m = scratch_m[slot(0)];

            for tile_idx in 1..kv_tiles {
                let base_s = slot(tile_idx);
                let base = base_s * dv;

                let m_b = scratch_m[base_s];
                let s_b = scratch_s[base_s];
                let vkq_b = &scratch[base..base + dv];
                // [perimeter patch] A tile with every position masked adds nothing (and its
                // -inf maximum would turn the merge into NaN).
                if s_b == 0.0 {
                    continue;
                }

                if m >= m_b {
                    let factor = (m_b - m).exp();
                    for (v, v_b) in vkq.iter_mut().zip(vkq_b) {
                        *v += v_b * factor;
                    }
                    s += s_b * factor;
                } else {
                    let factor = (m - m_b).exp();
                    for (v, v_a) in vkq.iter_mut().zip(vkq_b) {
                        *v = v_a + *v * factor;
                    }
                    s = s_b + s * factor;
                    m = m_b;
                }
            }

            write_normalised(&mut out[out_off..][..dv], &vkq, s);
        }
    }

    Tensor::from_vec(out, (b, h, 1, dv), &Device::Cpu)
}

/// Main forward flash-attention CPU routine.
/// Shapes follow Candle convention: (B, S, H, D)
#[allow(clippy::too_many_arguments)]
fn flash_attn_cpu<T>(
    q_data: &[T],
    k_data: &[T],
    v_data: &[T],
    mask_vec: Option<&[T]>,
    mask_dims: Option<&[usize]>,
    qshape: &[usize],
    kshape: &[usize],
    vshape: &[usize],
    qstride: &[usize],
    kstride: &[usize],
    vstride: &[usize],
    scale: f32,
    max_bias: f32,
    logit_softcap: f32,
) -> Result<Tensor>
where
    T: WithDType + Copy + UpcastF32 + DowncastF32,
{
    let (b, q_len, h, d) = (qshape[0], qshape[1], qshape[2], qshape[3]);
    let kv_len = kshape[1];
    let k_h = kshape[2];
    let v_h = vshape[2];
    let rk2 = h / k_h;
    let rv2 = h / v_h;
    let dv = d;

    let mut out = vec![T::cast(0.0); b * q_len * h * dv];

    assert_eq!(qstride[3], 1, "q must have contiguous rows");
    assert_eq!(kstride[3], 1, "k must have contiguous rows");
    assert_eq!(vstride[3], 1, "v must have contiguous rows");

    let mask_info = match (mask_vec, mask_dims) {
        (Some(data), Some(dims)) => Some(MaskInfo { data, dims, b, h }),
        _ => None,
    };

    // [perimeter patch] K and V in f32 once, for the whole call.
    let (mut k_f32, mut v_f32) = (Vec::new(), Vec::new());
    upcast_into(&mut k_f32, &k_data[..spanned_len(kshape, kstride)]);
    upcast_into(&mut v_f32, &v_data[..spanned_len(vshape, vstride)]);
    let (k_data, v_data) = (k_f32.as_slice(), v_f32.as_slice());

    FLASH_ATTN_POOL.install(|| {
        // [perimeter patch] Blocks of ROWS consecutive query positions of one (batch, head):
        // their keys and values are the same, and a causal mask gives them nearly the same
        // visible range.
        let blocks = out.par_chunks_mut(q_len * dv).enumerate().flat_map(|(bh, head_out)| {
            head_out.par_chunks_mut(ROWS * dv).enumerate().map(move |(blk, out)| (bh, blk * ROWS, out))
        });
        blocks.for_each_init(BlockScratch::default, |block, (bh, q0, out_block)| {
            let (b_i, h_i) = (bh / h, bh % h);
            let rows = out_block.len() / dv;
            let (k_head, v_head) = (h_i / rk2, h_i / rv2);
            let slope = alibi_slope(max_bias, h, h_i);

            // The rows in f32, their masks, and the union of the positions they can see.
            block.q.resize(rows * d, 0.0);
            let mut masks = [None; ROWS];
            let mut kv = if mask_info.is_some() { kv_len..0 } else { 0..kv_len };
            for r in 0..rows {
                let q_base = b_i * qstride[0] + (q0 + r) * qstride[1] + h_i * qstride[2];
                T::upcast_slice(&q_data[q_base..q_base + d], &mut block.q[r * d..][..d]);
                if let Some(mask) = &mask_info {
                    let row = mask.row(b_i, h_i, q0 + r);
                    let live = row.live_range(kv_len);
                    if !live.is_empty() {
                        kv = kv.start.min(live.start)..kv.end.max(live.end);
                    }
                    masks[r] = Some((row, slope));
                }
            }
            if kv.is_empty() {
                kv = 0..0;
            }

            let k_base = b_i * kstride[0] + k_head * kstride[2] + kv.start * kstride[1];
            let v_base = b_i * vstride[0] + v_head * vstride[2] + kv.start * vstride[1];
            let keys = Rows { data: &k_data[k_base..], stride: kstride[1], len: d };
            let values = Rows { data: &v_data[v_base..], stride: vstride[1], len: dv };
            let stats = attend_block(rows, keys, values, kv, &masks, (scale, logit_softcap), block);
            for (r, out_row) in out_block.chunks_exact_mut(dv).enumerate() {
                write_normalised(out_row, &block.acc[r * dv..][..dv], stats[r].1);
            }
        });
    });

    let out_shape = (b, h, q_len, dv);
    Tensor::from_vec(out, out_shape, &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::SdpaParams;
    use candle_core::{Device, Tensor, D};
    use candle_nn::ops::softmax;

    use candle_core::Result as CandleResult;

    const EPS: f32 = 1e-4;

    // [perimeter patch] Both paths against a plain f64 softmax, on data that is not all ones:
    // several batches, grouped-query heads, a causal (or sliding) mask, lengths that are not
    // multiples of the kernels' blocks of 4 and 8 or of the decode tile, f32 and f16.

    /// A deterministic value in [-1, 1).
    fn pseudo(i: usize) -> f32 {
        let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
        (x as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// softmax(q·kᵀ·scale + mask)·v per (batch, head, query), in f64; q (b, q_len, h, d),
    /// k and v (b, kv_len, k_h, d), mask (q_len, kv_len) or none. Out: (b, h, q_len, d).
    #[allow(clippy::too_many_arguments)]
    fn reference(
        q: &[f32], k: &[f32], v: &[f32], mask: Option<&[f32]>,
        (b, q_len, h, d): (usize, usize, usize, usize), kv_len: usize, k_h: usize, scale: f32,
    ) -> Vec<f32> {
        let mut out = vec![0f32; b * h * q_len * d];
        for b_i in 0..b {
            for h_i in 0..h {
                let kh = h_i / (h / k_h);
                for qp in 0..q_len {
                    let qr = &q[((b_i * q_len + qp) * h + h_i) * d..][..d];
                    let scores: Vec<f64> = (0..kv_len)
                        .map(|j| {
                            let kr = &k[((b_i * kv_len + j) * k_h + kh) * d..][..d];
                            let dot: f64 = qr.iter().zip(kr).map(|(a, b)| *a as f64 * *b as f64).sum();
                            dot * scale as f64 + mask.map_or(0.0, |m| m[qp * kv_len + j] as f64)
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let w: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let sum: f64 = w.iter().sum();
                    for i in 0..d {
                        let o: f64 = (0..kv_len)
                            .map(|j| w[j] * v[((b_i * kv_len + j) * k_h + kh) * d + i] as f64)
                            .sum();
                        out[((b_i * h + h_i) * q_len + qp) * d + i] = (o / sum) as f32;
                    }
                }
            }
        }
        out
    }

    /// The mask a prompt of `q_len` tokens after `kv_len - q_len` cached ones gets: each query
    /// sees the cache, itself and what precedes it, and (with a window) only the last `window`.
    fn causal_mask(q_len: usize, kv_len: usize, window: Option<usize>) -> Vec<f32> {
        let past = kv_len - q_len;
        let mut m = vec![0f32; q_len * kv_len];
        for qp in 0..q_len {
            for j in 0..kv_len {
                let visible = j <= past + qp && window.is_none_or(|w| past + qp - j < w);
                if !visible {
                    m[qp * kv_len + j] = f32::NEG_INFINITY;
                }
            }
        }
        m
    }

    fn check_against_reference<T: WithDType + Sum + num_traits::real::Real + DowncastF32 + UpcastF32 + Copy>(
        (b, q_len, h, d): (usize, usize, usize, usize), kv_len: usize, k_h: usize,
        window: Option<usize>, tolerance: f32,
    ) -> CandleResult<()> {
        let dev = &Device::Cpu;
        // Rounded to T first, so the reference sees the values the kernel sees.
        let data = |n: usize, salt: usize| -> CandleResult<Vec<f32>> {
            let v: Vec<f32> = (0..n).map(|i| pseudo(i * 7 + salt)).collect();
            Tensor::from_vec(v, n, dev)?.to_dtype(T::DTYPE)?.to_dtype(candle_core::DType::F32)?.to_vec1()
        };
        let (q, k, v) = (data(b * q_len * h * d, 1)?, data(b * kv_len * k_h * d, 2)?, data(b * kv_len * k_h * d, 3)?);
        let mask = (q_len > 1 || window.is_some()).then(|| causal_mask(q_len, kv_len, window));
        let scale = 1.0 / (d as f32).sqrt();
        let tensor = |x: &[f32], shape: (usize, usize, usize, usize)| {
            Tensor::from_vec(x.to_vec(), shape, dev)?.to_dtype(T::DTYPE)
        };
        let sdpa = SdpaParams { softmax_scale: scale, softcap: None, n_kv_groups: h / k_h, sliding_window: window, sinks: None };
        let mask_t = match &mask {
            Some(m) => Some(Tensor::from_vec(m.clone(), (q_len, kv_len), dev)?.to_dtype(T::DTYPE)?),
            None => None,
        };
        let out = run_flash_attn_cpu::<T>(
            &tensor(&q, (b, q_len, h, d))?,
            &tensor(&k, (b, kv_len, k_h, d))?,
            &tensor(&v, (b, kv_len, k_h, d))?,
            mask_t.as_ref(),
            &sdpa,
        )?;
        assert_eq!(out.dims(), &[b, h, q_len, d]);
        let got = out.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let want = reference(&q, &k, &v, mask.as_deref(), (b, q_len, h, d), kv_len, k_h, scale);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= tolerance, "element {i}: {g} vs reference {w} (shape b{b} q{q_len} h{h} d{d} kv{kv_len})");
        }
        Ok(())
    }

    #[test]
    fn prompt_path_matches_reference() -> CandleResult<()> {
        check_against_reference::<f32>((2, 37, 6, 64), 37, 2, None, 1e-5)?;
        check_against_reference::<f32>((1, 13, 4, 6), 50, 4, None, 1e-5)?; // after a cache
        check_against_reference::<f32>((1, 29, 3, 64), 29, 1, Some(8), 1e-5)?; // sliding window
        check_against_reference::<f32>((1, 10, 8, 72), 40, 2, None, 1e-5)?; // after a cache
        check_against_reference::<f16>((2, 21, 9, 64), 21, 3, None, 2e-3)
    }

    /// [perimeter patch] What a prefix-cache hit computes: the rows of a prompt from `past` on,
    /// against the cached keys and values of the positions before them.
    fn rows_after_cache(
        (q, k, v): (&[f32], &[f32], &[f32]), (len, h, d): (usize, usize, usize), k_h: usize, past: usize,
    ) -> CandleResult<Vec<f32>> {
        let dev = &Device::Cpu;
        let q_len = len - past;
        let sdpa = SdpaParams { softmax_scale: 1.0 / (d as f32).sqrt(), softcap: None, n_kv_groups: h / k_h, sliding_window: None, sinks: None };
        let mask = Tensor::from_vec(causal_mask(q_len, len, None), (q_len, len), dev)?;
        let out = run_flash_attn_cpu::<f32>(
            &Tensor::from_vec(q[past * h * d..].to_vec(), (1, q_len, h, d), dev)?,
            &Tensor::from_vec(k.to_vec(), (1, len, k_h, d), dev)?,
            &Tensor::from_vec(v.to_vec(), (1, len, k_h, d), dev)?,
            Some(&mask),
            &sdpa,
        )?;
        out.flatten_all()?.to_vec1::<f32>()
    }

    // [perimeter patch] Why a prefix-cache hit is cut to a multiple of PROMPT_BLOCK_ROWS
    // (prefix_cacher.rs): from such a start the rest of the prompt gets exactly the values the
    // whole prompt computed fresh gets, so a greedy answer does not depend on the cache.
    #[test]
    fn a_prompt_after_a_cache_of_whole_blocks_matches_the_fresh_prompt_to_the_bit() -> CandleResult<()> {
        let (len, h, k_h, d) = (45, 4, 2, 64);
        let data = |n: usize, salt: usize| (0..n).map(|i| pseudo(i * 7 + salt) * 4.0).collect::<Vec<f32>>();
        let (q, k, v) = (data(len * h * d, 1), data(len * k_h * d, 2), data(len * k_h * d, 3));
        let fresh = rows_after_cache((&q, &k, &v), (len, h, d), k_h, 0)?;
        for past in [PROMPT_BLOCK_ROWS, 2 * PROMPT_BLOCK_ROWS, 5 * PROMPT_BLOCK_ROWS, 10 * PROMPT_BLOCK_ROWS] {
            let after_cache = rows_after_cache((&q, &k, &v), (len, h, d), k_h, past)?;
            for h_i in 0..h {
                let want = &fresh[(h_i * len + past) * d..(h_i + 1) * len * d];
                let got = &after_cache[h_i * (len - past) * d..(h_i + 1) * (len - past) * d];
                let same = want.iter().zip(got).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "head {h_i}: rows after a cache of {past} positions differ from the fresh prompt's");
            }
        }
        Ok(())
    }

    #[test]
    fn decode_path_matches_reference() -> CandleResult<()> {
        check_against_reference::<f32>((2, 1, 6, 64), 83, 2, None, 1e-5)?;
        check_against_reference::<f32>((1, 1, 4, 6), 5, 4, None, 1e-5)?;
        // Masked: whole tiles of 16 positions out of the window.
        check_against_reference::<f32>((1, 1, 3, 64), 70, 1, Some(20), 1e-5)?;
        // Eight query heads on one KV head (two blocks of four), tiles longer than 16.
        check_against_reference::<f32>((1, 1, 8, 72), 300, 1, None, 1e-5)?;
        check_against_reference::<f16>((3, 1, 9, 64), 145, 3, None, 2e-3)
    }

    #[test]
    fn test_flash_attn_cpu_single_q() -> CandleResult<()> {
        // Test for q_len == 1 (single Q)
        let b = 1;
        let h = 2;
        let d = 4;
        let kv_len = 2;

        // Create q with shape (b, 1, h, d) filled with ones
        let q_vec = vec![1.0f32; b * h * d];
        let q = Tensor::from_vec(q_vec.clone(), (b, 1, h, d), &Device::Cpu)?;

        // Create k and v with shape (b, kv_len, h, d) filled with ones
        let k_vec = vec![1.0f32; b * kv_len * h * d];
        let v_vec = vec![1.0f32; b * kv_len * h * d];
        let k = Tensor::from_vec(k_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;
        let v = Tensor::from_vec(v_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;

        // SDPA parameters: scale = 1.0, no softcap
        let sdpa = SdpaParams {
            softmax_scale: 1.0,
            softcap: None,
            n_kv_groups: 1,
            sliding_window: None,
            sinks: None,
        };
        let scale = sdpa.softmax_scale;

        // Run the flash attention CPU function
        let out = run_flash_attn_cpu::<f32>(&q, &k, &v, None, &sdpa)?;
        // Expect output shape (b, h, 1, d)
        assert_eq!(out.shape().dims(), &[b, h, 1, d]);

        // Naive attention
        let q_perm = q.clone().permute((0, 2, 1, 3))?;
        let k_perm = k.clone().permute((0, 2, 1, 3))?;
        let v_perm = v.clone().permute((0, 2, 1, 3))?;

        let q_resh = q_perm.reshape(&[b * h, 1, d])?;
        let k_resh = k_perm.reshape(&[b * h, kv_len, d])?;
        let v_resh = v_perm.reshape(&[b * h, kv_len, d])?;

        let logits = (q_resh.matmul(&k_resh.transpose(1, 2)?)? * scale as f64)?;
        let weights = softmax(&logits, D::Minus1)?;

        let attn_out = weights.matmul(&v_resh)?;

        let naive_out = attn_out.reshape(&[b, h, 1, d])?;

        let flash_data = out.flatten_all()?.to_vec1::<f32>()?;
        let naive_data = naive_out.flatten_all()?.to_vec1::<f32>()?;
        for (f_val, n_val) in flash_data.iter().zip(naive_data.iter()) {
            assert!((f_val - n_val).abs() < EPS);
        }

        Ok(())
    }

    #[test]
    fn test_flash_attn_cpu_full_q() -> CandleResult<()> {
        // Test for q_len > 1 (full Q)
        let b = 1;
        let q_len = 2;
        let h = 2;
        let d = 4;
        let kv_len = 2;

        // Create q with shape (b, q_len, h, d) filled with ones
        let q_vec = vec![1.0f32; b * q_len * h * d];
        let q = Tensor::from_vec(q_vec.clone(), (b, q_len, h, d), &Device::Cpu)?;

        // Create k and v with shape (b, kv_len, h, d) filled with ones
        let k_vec = vec![1.0f32; b * kv_len * h * d];
        let v_vec = vec![1.0f32; b * kv_len * h * d];
        let k = Tensor::from_vec(k_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;
        let v = Tensor::from_vec(v_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;

        // SDPA parameters: scale = 1.0, no softcap
        let sdpa = SdpaParams {
            softmax_scale: 1.0,
            softcap: None,
            n_kv_groups: 1,
            sliding_window: None,
            sinks: None,
        };
        let scale = sdpa.softmax_scale;

        // Run the flash attention CPU function
        let out = run_flash_attn_cpu::<f32>(&q, &k, &v, None, &sdpa)?;
        // Expect output shape (b, h, q_len, d)
        assert_eq!(out.shape().dims(), &[b, h, q_len, d]);

        // Naive attention
        let q_perm = q.clone().permute((0, 2, 1, 3))?;
        let k_perm = k.clone().permute((0, 2, 1, 3))?;
        let v_perm = v.clone().permute((0, 2, 1, 3))?;

        let q_resh = q_perm.reshape(&[b * h, q_len, d])?;
        let k_resh = k_perm.reshape(&[b * h, kv_len, d])?;
        let v_resh = v_perm.reshape(&[b * h, kv_len, d])?;

        let logits = (q_resh.matmul(&k_resh.transpose(1, 2)?)? * scale as f64)?;
        let weights = softmax(&logits, D::Minus1)?;

        let attn_out = weights.matmul(&v_resh)?;

        let naive_out = attn_out.reshape(&[b, h, q_len, d])?;

        // 7) Compare element‐by‐element
        let flash_data = out.flatten_all()?.to_vec1::<f32>()?;
        let naive_data = naive_out.flatten_all()?.to_vec1::<f32>()?;
        for (f_val, n_val) in flash_data.iter().zip(naive_data.iter()) {
            assert!((f_val - n_val).abs() < EPS);
        }

        Ok(())
    }

    #[test]
    fn test_flash_attn_cpu_single_q_softcap() -> CandleResult<()> {
        // Test for q_len == 1 (single Q) with softcap
        let b = 1;
        let h = 2;
        let d = 4;
        let kv_len = 2;

        // Create q with shape (b, 1, h, d) filled with ones
        let q_vec = vec![1.0f32; b * h * d];
        let q = Tensor::from_vec(q_vec.clone(), (b, 1, h, d), &Device::Cpu)?;

        // Create k and v with shape (b, kv_len, h, d) filled with ones
        let k_vec = vec![1.0f32; b * kv_len * h * d];
        let v_vec = vec![1.0f32; b * kv_len * h * d];
        let k = Tensor::from_vec(k_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;
        let v = Tensor::from_vec(v_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;

        // SDPA parameters: scale = 1.0, softcap = Some(0.5)
        let sdpa = SdpaParams {
            softmax_scale: 1.0,
            softcap: Some(0.5),
            n_kv_groups: 1,
            sliding_window: None,
            sinks: None,
        };
        let scale = sdpa.softmax_scale;
        let sc = sdpa.softcap.unwrap();

        // Run the flash attention CPU function
        let out = run_flash_attn_cpu::<f32>(&q, &k, &v, None, &sdpa)?;
        // Expect output shape (b, h, 1, d)
        assert_eq!(out.shape().dims(), &[b, h, 1, d]);

        // Naive attention with softcap
        let q_perm = q.clone().permute((0, 2, 1, 3))?;
        let k_perm = k.clone().permute((0, 2, 1, 3))?;
        let v_perm = v.clone().permute((0, 2, 1, 3))?;

        let q_resh = q_perm.reshape(&[b * h, 1, d])?;
        let k_resh = k_perm.reshape(&[b * h, kv_len, d])?;
        let v_resh = v_perm.reshape(&[b * h, kv_len, d])?;

        let logits = (q_resh.matmul(&k_resh.transpose(1, 2)?)? * scale as f64)?;

        let logits = (logits / sc as f64)?;
        let logits = logits.tanh()?;
        let logits = (logits * sc as f64)?;

        let weights = softmax(&logits, D::Minus1)?;
        let attn_out = weights.matmul(&v_resh)?;
        let naive_out = attn_out.reshape(&[b, h, 1, d])?;

        let flash_data = out.flatten_all()?.to_vec1::<f32>()?;
        let naive_data = naive_out.flatten_all()?.to_vec1::<f32>()?;
        for (f_val, n_val) in flash_data.iter().zip(naive_data.iter()) {
            assert!((f_val - n_val).abs() < EPS);
        }
        Ok(())
    }

    #[test]
    fn test_flash_attn_cpu_full_q_softcap() -> CandleResult<()> {
        // Test for q_len > 1 (full Q) with softcap
        let b = 1;
        let q_len = 2;
        let h = 2;
        let d = 4;
        let kv_len = 2;

        // Create q with shape (b, q_len, h, d) filled with ones
        let q_vec = vec![1.0f32; b * q_len * h * d];
        let q = Tensor::from_vec(q_vec.clone(), (b, q_len, h, d), &Device::Cpu)?;

        // Create k and v with shape (b, kv_len, h, d) filled with ones
        let k_vec = vec![1.0f32; b * kv_len * h * d];
        let v_vec = vec![1.0f32; b * kv_len * h * d];
        let k = Tensor::from_vec(k_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;
        let v = Tensor::from_vec(v_vec.clone(), (b, kv_len, h, d), &Device::Cpu)?;

        // SDPA parameters: scale = 1.0, softcap = Some(0.5)
        let sdpa = SdpaParams {
            softmax_scale: 1.0,
            softcap: Some(0.5),
            n_kv_groups: 1,
            sliding_window: None,
            sinks: None,
        };
        let scale = sdpa.softmax_scale;
        let sc = sdpa.softcap.unwrap();

        // Run the flash attention CPU function
        let out = run_flash_attn_cpu::<f32>(&q, &k, &v, None, &sdpa)?;
        // Expect output shape (b, h, q_len, d)
        assert_eq!(out.shape().dims(), &[b, h, q_len, d]);

        // Naive attention with softcap
        let q_perm = q.clone().permute((0, 2, 1, 3))?;
        let k_perm = k.clone().permute((0, 2, 1, 3))?;
        let v_perm = v.clone().permute((0, 2, 1, 3))?;

        let q_resh = q_perm.reshape(&[b * h, q_len, d])?;
        let k_resh = k_perm.reshape(&[b * h, kv_len, d])?;
        let v_resh = v_perm.reshape(&[b * h, kv_len, d])?;

        let logits = (q_resh.matmul(&k_resh.transpose(1, 2)?)? * scale as f64)?;

        let logits = (logits / sc as f64)?;
        let logits = logits.tanh()?;
        let logits = (logits * sc as f64)?;

        let weights = softmax(&logits, D::Minus1)?;
        let attn_out = weights.matmul(&v_resh)?;
        let naive_out = attn_out.reshape(&[b, h, q_len, d])?;

        let flash_data = out.flatten_all()?.to_vec1::<f32>()?;
        let naive_data = naive_out.flatten_all()?.to_vec1::<f32>()?;
        for (f_val, n_val) in flash_data.iter().zip(naive_data.iter()) {
            assert!((f_val - n_val).abs() < EPS);
        }
        Ok(())
    }
}
