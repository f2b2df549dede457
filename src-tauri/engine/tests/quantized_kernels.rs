//! The patched candle-core kernels (patches/candle-core; see patches/README.md) against
//! candle's own scalar reference: the AVX2 Q4_1 dot product (one row and four rows at once),
//! the four-row Q4_K, Q6_K, Q5_0 and Q8_0 kernels (what Qwen2.5-Coder's Q4_K_M files spend a
//! prompt in),
//! the AVX2 Q8_1 quantizer of the activations, and the tiled matmul for prompt batches (row
//! counts and column counts that are not multiples of the tile, and the Q4_K, Q5_0 and Q6_K
//! tiles on eight columns at a time, within rounding); the VNNI versions of the
//! byte-product kernels against the AVX2 ones, bit for bit; and the GGUF reader that loads a
//! CPU tensor straight into its blocks.

use candle_core::quantized::k_quants::{
    matmul, matmul_f16, BlockQ4K, BlockQ4_1, BlockQ5_0, BlockQ6K, BlockQ8K, BlockQ8_0, BlockQ8_1, GgmlType,
};
use candle_core::quantized::GgmlDType;
use half::f16;

/// Deterministic values in [-1, 1) (xorshift), with a few large ones like real activations.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let v = (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            if i % 97 == 0 { v * 8.0 } else { v }
        })
        .collect()
}

fn quantize<T: GgmlType>(xs: &[f32]) -> Vec<T> {
    let mut out = vec![T::zeros(); xs.len() / T::BLCK_SIZE];
    T::from_float(xs, &mut out);
    out
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-4 * (1.0 + a.abs().max(b.abs()))
}

/// `got` differs from `want` only by the rounding of summing `blocks` blocks' float products in
/// another order (a wrong scale, minimum or weight moves it by far more).
fn within_rounding(got: f32, want: f32, blocks: usize) -> bool {
    (got - want).abs() <= 1e-5 * (1.0 + want.abs()) * blocks as f32
}

#[test]
fn q4_1_dot_product_matches_the_scalar_reference() {
    for (k, seed) in [(32, 1), (64, 2), (576, 3), (1536, 4), (4096, 5)] {
        let x = quantize::<BlockQ4_1>(&values(k, seed));
        let y = quantize::<BlockQ8_1>(&values(k, seed + 100));
        let fast = BlockQ4_1::vec_dot(k, &x, &y);
        let reference = BlockQ4_1::vec_dot_unopt(k, &x, &y);
        assert!(close(fast, reference), "k={k}: {fast} vs {reference}");
    }
}

#[test]
fn q5_0_dot_product_matches_the_scalar_reference() {
    // 896: the row length of Qwen2.5-Coder-0.5B, whose weights are mostly Q5_0.
    for (k, seed) in [(32, 11), (64, 12), (896, 13), (1536, 14), (4864, 15)] {
        let x = quantize::<BlockQ5_0>(&values(k, seed));
        let y = quantize::<BlockQ8_0>(&values(k, seed + 100));
        let fast = BlockQ5_0::vec_dot(k, &x, &y);
        let reference = BlockQ5_0::vec_dot_unopt(k, &x, &y);
        assert!(close(fast, reference), "k={k}: {fast} vs {reference}");
    }
    // Every high-bit pattern: all set, none set, alternating (the sign trick's edge cases).
    for pattern in [[0xFFu8; 4], [0; 4], [0xAA, 0x55, 0x0F, 0xF0]] {
        let mut x = quantize::<BlockQ5_0>(&values(64, 21));
        for b in x.iter_mut() {
            // `repr(C)`: d (f16) at 0, the 32 high bits at 2..6, the nibbles after.
            unsafe { std::ptr::copy_nonoverlapping(pattern.as_ptr(), (b as *mut BlockQ5_0 as *mut u8).add(2), 4) };
        }
        let y = quantize::<BlockQ8_0>(&values(64, 22));
        let (fast, reference) = (BlockQ5_0::vec_dot(64, &x, &y), BlockQ5_0::vec_dot_unopt(64, &x, &y));
        assert!(close(fast, reference), "{pattern:?}: {fast} vs {reference}");
    }
}

/// candle's scalar `BlockQ8_1::from_float` as upstream wrote it, block by block, as the bytes
/// of the `repr(C)` block: `d` and `s` (f16) then the 32 quants.
fn q8_1_reference_bytes(xs: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for xs in xs.chunks_exact(32) {
        let amax = xs.iter().fold(0f32, |m, x| m.max(x.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let qs: Vec<i8> = xs.iter().map(|x| (x * id).round() as i8).collect();
        let d16 = f16::from_f32(d);
        let s16 = f16::from_f32(qs.iter().map(|&q| q as i32).sum::<i32>() as f32) * d16;
        out.extend(d16.to_le_bytes());
        out.extend(s16.to_le_bytes());
        out.extend(qs.iter().map(|&q| q as u8));
    }
    out
}

#[test]
fn q8_1_quantizer_gives_the_scalar_reference_bit_for_bit() {
    // Real activations, zeros, exact halves after scaling (ties round away from zero), huge.
    let mut xs = values(32 * 64, 9);
    xs[..32].fill(0.0);
    // With a maximum of 127 the scale is exactly 1, so these are ties: ..., -0.5, 0.5, 1.5, ...
    for (i, x) in xs[32..64].iter_mut().enumerate() {
        *x = i as f32 - 16.0 + 0.5;
    }
    xs[32] = -127.0;
    xs[64..96].iter_mut().enumerate().for_each(|(i, x)| *x = (i as f32 - 15.5) * 1e30);
    let blocks = quantize::<BlockQ8_1>(&xs);
    assert_eq!(std::mem::size_of::<BlockQ8_1>(), 36);
    // SAFETY: BlockQ8_1 is repr(C), 36 bytes without padding (checked above).
    let bytes = unsafe { std::slice::from_raw_parts(blocks.as_ptr() as *const u8, blocks.len() * 36) };
    let want = q8_1_reference_bytes(&xs);
    for (b, (got, want)) in bytes.chunks_exact(36).zip(want.chunks_exact(36)).enumerate() {
        assert_eq!(got, want, "block {b}");
    }
}

/// `vec_dot_x4` of `T` gives, bit for bit, what four `vec_dot` calls give, and `vec_dot` stays
/// within rounding of the scalar reference.
fn four_rows_match_single_rows<T: GgmlType>(k: usize, seed: u64) {
    let x = quantize::<T>(&values(k, seed));
    let ys: Vec<Vec<T::VecDotType>> = (0..4).map(|r| quantize::<T::VecDotType>(&values(k, seed + 20 + r))).collect();
    let four = T::vec_dot_x4(k, &x, [&ys[0], &ys[1], &ys[2], &ys[3]]);
    for r in 0..4 {
        let single = T::vec_dot(k, &x, &ys[r]);
        assert_eq!(four[r].to_bits(), single.to_bits(), "{:?} k={k} row {r}: {} vs {single}", T::DTYPE, four[r]);
        let reference = T::vec_dot_unopt(k, &x, &ys[r]);
        assert!(close(single, reference), "{:?} k={k} row {r}: {single} vs {reference}", T::DTYPE);
    }
}

#[test]
fn four_row_kernels_give_exactly_four_single_rows() {
    four_rows_match_single_rows::<BlockQ4_1>(576, 7);
    // 256: one block; 1536 and 8960: Qwen2.5-Coder-1.5B's hidden and feed-forward sizes.
    for (k, seed) in [(256, 31), (1536, 32), (8960, 33)] {
        four_rows_match_single_rows::<BlockQ4K>(k, seed);
        four_rows_match_single_rows::<BlockQ6K>(k, seed + 10);
    }
    // 896 and 4864: Qwen2.5-Coder-0.5B's sizes, whose weights are mostly Q5_0 and Q8_0.
    for (k, seed) in [(32, 41), (896, 42), (4864, 43)] {
        four_rows_match_single_rows::<BlockQ5_0>(k, seed);
        four_rows_match_single_rows::<BlockQ8_0>(k, seed + 10);
    }
}

/// The batch matmul of Q4_K and Q6_K weights against the scalar reference per element. Below
/// eight rows it is, bit for bit, the one-row kernel's; from eight rows on it runs on eight
/// columns at a time (`avx_columns8`): the same integer sums, the floats summed in another
/// order, so within rounding of the one-row kernel.
#[test]
fn tiled_k_quant_matmul_matches_a_dot_product_per_element() {
    // Rows around the 4-row groups: 12 = 3·4, 13 = 3·4 + 1, 23 = 5·4 + 3 (and 5, 7 below the
    // eight rows of the eight-column path); columns around the 32-column tiles and their groups
    // of eight (33: four groups and one column left over; 40: a second tile of one group; 44: of
    // one group and four columns).
    for (k, m, n) in [(512, 1, 40), (512, 5, 33), (512, 7, 40), (512, 12, 64), (512, 13, 33), (512, 23, 40), (1536, 9, 44), (2560, 8, 8)] {
        let lhs = values(m * k, 50 + m as u64);
        let q4 = quantize::<BlockQ4K>(&values(n * k, 60 + n as u64));
        let q6 = quantize::<BlockQ6K>(&values(n * k, 70 + n as u64));
        let mut dst4 = vec![f32::NAN; m * n];
        let mut dst6 = vec![f32::NAN; m * n];
        matmul((m, k, n), &lhs, &q4, &mut dst4).unwrap();
        matmul((m, k, n), &lhs, &q6, &mut dst6).unwrap();
        let blocks = k / 256;
        for row in 0..m {
            let lhs_row = quantize::<BlockQ8K>(&lhs[row * k..(row + 1) * k]);
            for col in 0..n {
                let cols = col * blocks..(col + 1) * blocks;
                let want4 = BlockQ4K::vec_dot_unopt(k, &q4[cols.clone()], &lhs_row);
                let want6 = BlockQ6K::vec_dot_unopt(k, &q6[cols], &lhs_row);
                let (got4, got6) = (dst4[row * n + col], dst6[row * n + col]);
                assert!(close(got4, want4), "Q4K m={m} n={n} [{row},{col}]: {got4} vs {want4}");
                assert!(close(got6, want6), "Q6K m={m} n={n} [{row},{col}]: {got6} vs {want6}");
                let cols = col * blocks..(col + 1) * blocks;
                let one4 = BlockQ4K::vec_dot(k, &q4[cols.clone()], &lhs_row);
                let one6 = BlockQ6K::vec_dot(k, &q6[cols], &lhs_row);
                if m < 8 {
                    assert_eq!(got4.to_bits(), one4.to_bits(), "Q4K m={m} [{row},{col}]");
                    assert_eq!(got6.to_bits(), one6.to_bits(), "Q6K m={m} [{row},{col}]");
                } else {
                    assert!(within_rounding(got4, one4, blocks), "Q4K m={m} n={n} [{row},{col}]: {got4} vs {one4}");
                    assert!(within_rounding(got6, one6, blocks), "Q6K m={m} n={n} [{row},{col}]: {got6} vs {one6}");
                }
            }
        }
    }
}

#[test]
fn tiled_matmul_matches_a_dot_product_per_element() {
    let k = 576;
    for (m, n) in [(1, 70), (2, 33), (7, 70), (64, 96), (129, 31)] {
        let lhs = values(m * k, m as u64);
        let rhs_t = quantize::<BlockQ4_1>(&values(n * k, 1000 + n as u64));
        let mut dst = vec![f32::NAN; m * n];
        matmul((m, k, n), &lhs, &rhs_t, &mut dst).unwrap();
        let blocks = k / 32;
        for row in 0..m {
            let lhs_row = quantize::<BlockQ8_1>(&lhs[row * k..(row + 1) * k]);
            for col in 0..n {
                let expected = BlockQ4_1::vec_dot_unopt(k, &rhs_t[col * blocks..(col + 1) * blocks], &lhs_row);
                let got = dst[row * n + col];
                assert!(close(got, expected), "m={m} n={n} [{row},{col}]: {got} vs {expected}");
            }
        }

        // The f16 entry point gives the same values, rounded to f16.
        let lhs16: Vec<f16> = lhs.iter().map(|&v| f16::from_f32(v)).collect();
        let lhs_rounded: Vec<f32> = lhs16.iter().map(|v| v.to_f32()).collect();
        let mut dst32 = vec![0f32; m * n];
        matmul((m, k, n), &lhs_rounded, &rhs_t, &mut dst32).unwrap();
        let mut dst16 = vec![f16::ZERO; m * n];
        matmul_f16((m, k, n), &lhs16, &rhs_t, &mut dst16).unwrap();
        for (a, b) in dst16.iter().zip(&dst32) {
            assert_eq!(*a, f16::from_f32(*b));
        }
    }
}

/// `matmul`'s batch path for Q5_0 and Q8_0 weights (its own tile loop, the activations' block
/// scales converted once per tile) gives, bit for bit, `vec_dot` of each element; Q5_0's from
/// eight rows on runs on eight columns at a time (`avx_columns8`): within rounding of it, and of
/// the scalar reference.
#[test]
fn q8_0_activation_tiles_give_exactly_one_dot_product_per_element() {
    fn check<T: GgmlType<VecDotType = BlockQ8_0>>(k: usize, m: usize, n: usize) {
        let lhs = values(m * k, 80 + m as u64);
        let rhs_t = quantize::<T>(&values(n * k, 90 + n as u64));
        let mut dst = vec![f32::NAN; m * n];
        matmul((m, k, n), &lhs, &rhs_t, &mut dst).unwrap();
        let blocks = k / 32;
        for row in 0..m {
            let lhs_row = quantize::<BlockQ8_0>(&lhs[row * k..(row + 1) * k]);
            for col in 0..n {
                let xs = &rhs_t[col * blocks..(col + 1) * blocks];
                let want = T::vec_dot(k, xs, &lhs_row);
                let got = dst[row * n + col];
                if T::DTYPE == GgmlDType::Q5_0 && m >= 8 {
                    assert!(within_rounding(got, want, blocks), "Q5_0 m={m} n={n} [{row},{col}]: {got} vs {want}");
                    let reference = T::vec_dot_unopt(k, xs, &lhs_row);
                    assert!(close(got, reference), "Q5_0 m={m} n={n} [{row},{col}]: {got} vs {reference}");
                } else {
                    assert_eq!(got.to_bits(), want.to_bits(), "{:?} m={m} n={n} [{row},{col}]: {got} vs {want}", T::DTYPE);
                }
            }
        }
    }
    // 896 and 4864: Qwen2.5-Coder-0.5B's sizes; rows around the 8-row and 4-row groups (13 =
    // 8 + 4 + 1, 15 = 8 + 4 + 3, 16 = 8 + 8) and columns around the 32-column tiles. One row
    // (decoding) runs four columns at a time: column counts around groups of 4 and the larger
    // tasks of a wide matrix (5003 columns: 78 a task, the last one short).
    for (k, m, n) in [
        (896, 2, 33),
        (896, 4, 32),
        (896, 13, 70),
        (896, 15, 20),
        (896, 16, 33),
        (4864, 9, 40),
        (896, 1, 3),
        (896, 1, 70),
        (4864, 1, 131),
        (896, 1, 5003),
    ] {
        check::<BlockQ5_0>(k, m, n);
        check::<BlockQ8_0>(k, m, n);
    }
}

/// The byte-product kernels (Q4_1, Q5_0, Q8_0: one row, four rows, the batch and one-row
/// matmul; Q4_K and Q6_K: four rows, the batch matmul) give the same bits with every instruction set this CPU
/// has as with AVX2. Where the CPU has no VNNI (the CI machine may not) only AVX2 runs, and the
/// test says so.
#[cfg(target_feature = "avx2")]
#[test]
fn vnni_kernels_give_the_avx2_bits() {
    use candle_core::quantized::avx::{byte_dot, set_byte_dot, ByteDot};

    fn results<T: GgmlType>(k: usize, seed: u64) -> Vec<u32> {
        let x = quantize::<T>(&values(k, seed));
        let ys: Vec<Vec<T::VecDotType>> = (0..4).map(|r| quantize::<T::VecDotType>(&values(k, seed + 1 + r))).collect();
        let mut out = vec![T::vec_dot(k, &x, &ys[0])];
        out.extend(T::vec_dot_x4(k, &x, [&ys[0], &ys[1], &ys[2], &ys[3]]));
        let (m, n) = (15, 40); // an 8-row group, a 4-row group and three single rows
        let lhs = values(m * k, seed + 7);
        let rhs_t = quantize::<T>(&values(n * k, seed + 8));
        let mut dst = vec![0f32; m * n];
        matmul((m, k, n), &lhs, &rhs_t, &mut dst).unwrap();
        out.extend(dst);
        // and one row (decoding), columns four at a time and one left over
        let mut row = vec![0f32; n + 1];
        let rhs_t = quantize::<T>(&values((n + 1) * k, seed + 9));
        matmul((1, k, n + 1), &lhs[..k], &rhs_t, &mut row).unwrap();
        out.extend(row);
        out.into_iter().map(f32::to_bits).collect()
    }
    fn all() -> Vec<Vec<u32>> {
        vec![
            results::<BlockQ4_1>(576, 1),
            results::<BlockQ5_0>(896, 2),
            results::<BlockQ8_0>(896, 3),
            results::<BlockQ5_0>(4864, 4),
            results::<BlockQ4K>(1536, 5),
            results::<BlockQ6K>(1536, 6),
        ]
    }

    let chosen = byte_dot();
    assert!(set_byte_dot(ByteDot::Avx2));
    let avx2 = all();
    let mut ran = vec![];
    for kind in [ByteDot::AvxVnni, ByteDot::Avx512Vnni] {
        if set_byte_dot(kind) {
            assert!(all() == avx2, "{} differs from avx2", kind.name());
            ran.push(kind.name());
        }
    }
    set_byte_dot(chosen);
    eprintln!("compared with avx2: {}", if ran.is_empty() { "none (this CPU has no VNNI)".to_string() } else { ran.join(", ") });
}

/// A GGUF file written by candle and read back through the CPU path (straight into the typed
/// blocks, no byte buffer in between) gives every tensor back byte for byte, for each type the
/// Llama and Qwen GGUF models use; a file cut short is an error, not garbage.
#[test]
fn gguf_tensors_read_on_the_cpu_are_the_bytes_written() {
    use candle_core::quantized::{gguf_file, QTensor};
    use candle_core::{Device, Tensor};
    let types = [
        GgmlDType::F32,
        GgmlDType::F16,
        GgmlDType::Q4_0,
        GgmlDType::Q4_1,
        GgmlDType::Q5_0,
        GgmlDType::Q8_0,
        GgmlDType::Q4K,
        GgmlDType::Q5K,
        GgmlDType::Q6K,
    ];
    let tensors: Vec<(String, QTensor)> = types
        .iter()
        .enumerate()
        .map(|(i, &dtype)| {
            let xs = Tensor::from_vec(values(3 * 512, i as u64 + 1), (3, 512), &Device::Cpu).unwrap();
            (format!("t{i}.weight"), QTensor::quantize(&xs, dtype).unwrap())
        })
        .collect();
    let mut file = std::io::Cursor::new(Vec::new());
    let named: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let arch = gguf_file::Value::String("llama".to_string());
    gguf_file::write(&mut file, &[("general.architecture", &arch)], &named).unwrap();

    let bytes = file.into_inner();
    let mut reader = std::io::Cursor::new(bytes.clone());
    let content = gguf_file::Content::read(&mut reader).unwrap();
    for (name, written) in &tensors {
        let read = content.tensor(&mut reader, name, &Device::Cpu).unwrap();
        assert_eq!(read.dtype(), written.dtype(), "{name}");
        assert_eq!(read.shape(), written.shape(), "{name}");
        assert_eq!(read.data().unwrap(), written.data().unwrap(), "{name} ({:?})", written.dtype());
    }

    let mut cut = std::io::Cursor::new(bytes[..bytes.len() - 100].to_vec());
    let content = gguf_file::Content::read(&mut cut).unwrap();
    let (last, _) = tensors.last().unwrap();
    assert!(content.tensor(&mut cut, last, &Device::Cpu).is_err(), "a tensor cut short must not load");
}
