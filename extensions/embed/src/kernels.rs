//! The numeric kernels of the local encoder: matrix products on `gemm`, and
//! the row-wise operations between them (bias, GELU, LayerNorm, softmax).
//!
//! The server binary is built for any x86-64, so the row-wise kernels are
//! compiled three times (AVX-512, AVX2 + FMA, baseline) and the widest the
//! CPU has is chosen at run time; their `exp` and `erf` are branch-free
//! polynomials so that the compiler vectorises the loops around them.
//!
//! This is the one module of the workspace allowed `unsafe`: `gemm` takes
//! raw pointers and strides, and a target-feature function may only be
//! called once the CPU is known to have the features. Each use says why it
//! is sound.
#![allow(unsafe_code)]

use gemm::Parallelism;

/// A read-only matrix over a slice, with row and column strides (so a
/// transposed or column-sliced view is free).
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// Panics when an element of the view would lie outside `data`.
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        assert!(
            rows == 0
                || cols == 0
                || (rows - 1) * row_stride + (cols - 1) * col_stride < data.len(),
            "a {rows}x{cols} view with strides ({row_stride}, {col_stride}) does not fit in {} values",
            data.len()
        );
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// `rows` x `cols`, row-major, contiguous.
    pub fn dense(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols, 1)
    }

    pub fn transposed(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// A writable, row-major matrix over a slice (rows may be further apart
/// than their width, never closer, so no two elements alias).
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a> MatMut<'a> {
    /// Panics when rows would overlap or lie outside `data`.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        assert!(
            row_stride >= cols,
            "rows of {cols} values {row_stride} apart overlap"
        );
        assert!(
            rows == 0 || cols == 0 || (rows - 1) * row_stride + cols <= data.len(),
            "a {rows}x{cols} view with row stride {row_stride} does not fit in {} values",
            data.len()
        );
        Self {
            data,
            rows,
            cols,
            row_stride,
        }
    }

    pub fn dense(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols)
    }
}

/// `dst = scale * lhs * rhs`, or `dst += scale * lhs * rhs` when
/// `accumulate`; on `threads` threads of the rayon pool (1: this thread).
pub fn matmul(
    dst: MatMut<'_>,
    accumulate: bool,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    scale: f32,
    threads: usize,
) {
    assert_eq!(lhs.rows, dst.rows, "lhs and dst rows differ");
    assert_eq!(rhs.cols, dst.cols, "rhs and dst columns differ");
    assert_eq!(lhs.cols, rhs.rows, "inner dimensions differ");
    if dst.rows == 0 || dst.cols == 0 {
        return;
    }
    if lhs.cols == 0 {
        if !accumulate {
            for row in dst.data.chunks_mut(dst.row_stride).take(dst.rows) {
                row[..dst.cols].fill(0.0);
            }
        }
        return;
    }
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    let stride = |s: usize| isize::try_from(s).expect("stride fits in isize");
    // SAFETY: the constructors checked that every element of the three
    // views lies inside its slice, and that the destination's rows do not
    // overlap; the shapes agree (asserted above). `dst` is borrowed mutably
    // and `lhs`/`rhs` shared, so the inputs cannot alias the output.
    unsafe {
        gemm::gemm(
            dst.rows,
            dst.cols,
            lhs.cols,
            dst.data.as_mut_ptr(),
            1,
            stride(dst.row_stride),
            accumulate,
            lhs.data.as_ptr(),
            stride(lhs.col_stride),
            stride(lhs.row_stride),
            rhs.data.as_ptr(),
            stride(rhs.col_stride),
            stride(rhs.row_stride),
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Defines a function whose body is compiled for AVX-512, for AVX2 + FMA
/// and for the baseline, and runs the widest the CPU supports.
macro_rules! vectorised {
    ($(#[$meta:meta])* pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        pub fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                {
                    // SAFETY: the CPU has every feature `avx512` is built for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has every feature `avx2` is built for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

vectorised! {
    /// Adds `bias` to every `bias.len()`-wide row of `rows`.
    pub fn add_bias(rows: &mut [f32], bias: &[f32]) {
        for row in rows.chunks_exact_mut(bias.len()) {
            for (x, b) in row.iter_mut().zip(bias) {
                *x += b;
            }
        }
    }
}

vectorised! {
    /// Adds `bias` to every row, then applies GELU (the exact, erf form
    /// BERT uses) in place.
    pub fn add_bias_gelu(rows: &mut [f32], bias: &[f32]) {
        for row in rows.chunks_exact_mut(bias.len()) {
            for (x, b) in row.iter_mut().zip(bias) {
                let v = *x + b;
                *x = 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
            }
        }
    }
}

vectorised! {
    /// `hidden = LayerNorm(hidden + projected + bias)`, row by row: the
    /// residual connection and normalisation after each BERT sub-layer.
    pub fn residual_layer_norm(
        hidden: &mut [f32],
        projected: &[f32],
        bias: &[f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
    ) {
        let width = gamma.len();
        for (row, add) in hidden.chunks_exact_mut(width).zip(projected.chunks_exact(width)) {
            for ((x, p), b) in row.iter_mut().zip(add).zip(bias) {
                *x += p + b;
            }
            normalise_row(row, gamma, beta, eps);
        }
    }
}

vectorised! {
    /// LayerNorm of every `gamma.len()`-wide row of `rows`, in place.
    pub fn layer_norm(rows: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
        for row in rows.chunks_exact_mut(gamma.len()) {
            normalise_row(row, gamma, beta, eps);
        }
    }
}

vectorised! {
    /// Softmax of every `width`-wide row of `rows`, in place.
    pub fn softmax_rows(rows: &mut [f32], width: usize) {
        for row in rows.chunks_exact_mut(width) {
            let max = max(row);
            for x in row.iter_mut() {
                *x = exp(*x - max);
            }
            let scale = 1.0 / sum(row);
            for x in row.iter_mut() {
                *x *= scale;
            }
        }
    }
}

#[inline(always)]
fn normalise_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let width = row.len() as f32;
    let mean = sum(row) / width;
    for x in row.iter_mut() {
        *x -= mean;
    }
    let variance = sum_of_squares(row) / width;
    let scale = 1.0 / (variance + eps).sqrt();
    for ((x, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *x = *x * scale * g + b;
    }
}

/// Lanes of the partial sums: enough for AVX-512, and a fixed order of
/// additions whatever the CPU, so results do not depend on the machine.
const LANES: usize = 16;

#[inline(always)]
fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (lane, x) in lanes.iter_mut().zip(chunk) {
            *lane += x;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// The largest value (NaN-blind, which scores never are).
#[inline(always)]
fn max(values: &[f32]) -> f32 {
    let larger = |a: f32, b: f32| if b > a { b } else { a };
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| larger(m, x));
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane = larger(*lane, x);
        }
    }
    lanes.into_iter().fold(rest, larger)
}

#[inline(always)]
fn sum_of_squares(values: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest: f32 = chunks.remainder().iter().map(|x| x * x).sum();
    for chunk in chunks {
        for (lane, x) in lanes.iter_mut().zip(chunk) {
            *lane += x * x;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// e^x to within 2 ulp for x in [-87, 88] (clamped outside): 2^n times a
/// degree-7 Taylor polynomial of e^r, |r| <= ln(2)/2.
///
/// n is rounded by adding 1.5 x 2^23, which leaves it in the low mantissa
/// bits, where 2^n's exponent is built from directly: a float-to-int cast
/// would not vectorise (Rust's `as` saturates, so it compiles to scalar
/// compare-and-insert sequences).
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // The low bits of `shifted` are n + 0x40_0000; shifting by 23 drops
    // everything above n + 127, the biased exponent of 2^n.
    p * f32::from_bits((shifted.to_bits() + 127) << 23)
}

/// erf(x) to within 1.5e-7 (Abramowitz and Stegun 7.1.26).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152_1 + t * 1.061_405_4))));
    (1.0 - poly * exp(-a * a)).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(lhs: &[f32], rhs: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| lhs[i * k + p] * rhs[p * n + j]).sum();
            }
        }
        out
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                ((i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 16) % 200) as f32 / 100.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn matmul_matches_naive_with_transposed_and_strided_views() {
        let (m, k, n) = (37, 19, 23);
        let lhs = values(m * k, 1);
        let rhs = values(k * n, 2);
        let expected = naive(&lhs, &rhs, m, k, n);
        // rhs stored transposed ([n, k], like a Linear layer's weight).
        let mut rhs_t = vec![0f32; n * k];
        for p in 0..k {
            for j in 0..n {
                rhs_t[j * k + p] = rhs[p * n + j];
            }
        }
        for threads in [1, 2] {
            // Output rows 5 apart wider than needed, with a bias to keep.
            let stride = n + 5;
            let mut out = vec![1f32; m * stride];
            matmul(
                MatMut::new(&mut out, m, n, stride),
                true,
                MatRef::dense(&lhs, m, k),
                MatRef::dense(&rhs_t, n, k).transposed(),
                0.5,
                threads,
            );
            for i in 0..m {
                for j in 0..n {
                    let want = 1.0 + 0.5 * expected[i * n + j];
                    assert!((out[i * stride + j] - want).abs() < 1e-4, "({i}, {j})");
                }
                assert!(
                    out[i * stride + n..(i + 1) * stride]
                        .iter()
                        .all(|&x| x == 1.0)
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn views_outside_their_slice_are_refused() {
        MatRef::new(&[0.0; 10], 3, 4, 4, 1);
    }

    #[test]
    fn exp_is_within_two_ulp() {
        for i in -8700..=8800 {
            let x = i as f32 / 100.0;
            let (got, want) = (exp(x), x.exp());
            assert!(
                ((got - want) / want).abs() < 2.5e-7,
                "exp({x}) = {got}, not {want}"
            );
        }
    }

    #[test]
    fn gelu_matches_reference_values() {
        // x * Phi(x) from erf(0.5/sqrt2) etc. to 9 digits.
        let cases = [
            (0.0f32, 0.0f32),
            (1.0, 0.841_344_7),
            (-1.0, -0.158_655_25),
            (2.0, 1.954_499_7),
            (-3.0, -0.004_049_694),
            (0.5, 0.345_731_37),
        ];
        let mut xs: Vec<f32> = cases.iter().map(|c| c.0).collect();
        add_bias_gelu(&mut xs, &[0.0]);
        for (got, (x, want)) in xs.iter().zip(cases) {
            assert!((got - want).abs() < 1e-6, "gelu({x}) = {got}, not {want}");
        }
    }

    #[test]
    fn softmax_and_layer_norm_agree_with_their_definitions() {
        let mut rows = values(3 * 40, 7);
        let original = rows.clone();
        softmax_rows(&mut rows, 40);
        for (row, orig) in rows.chunks(40).zip(original.chunks(40)) {
            let total: f32 = orig.iter().map(|x| x.exp()).sum();
            for (got, x) in row.iter().zip(orig) {
                assert!((got - x.exp() / total).abs() < 1e-6);
            }
        }

        let mut rows = values(2 * 48, 9);
        let original = rows.clone();
        let gamma = values(48, 3);
        let beta = values(48, 4);
        layer_norm(&mut rows, &gamma, &beta, 1e-12);
        for (row, orig) in rows.chunks(48).zip(original.chunks(48)) {
            let mean = orig.iter().sum::<f32>() / 48.0;
            let var = orig.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / 48.0;
            for i in 0..48 {
                let want = (orig[i] - mean) / var.sqrt() * gamma[i] + beta[i];
                assert!((row[i] - want).abs() < 1e-5);
            }
        }
    }
}
