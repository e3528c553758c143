// The per-Euler-step matrix products of the network and of its backward
// pass (MODEL.md sections 2 and 4): C (M x n) = or += A (M x k) B with A
// column-major and B read element by element through two strides, so that
// a transposed operand costs nothing. The shapes are small (32 x 64 x 32 at
// the defaults) and A is a weight matrix used at every step: a general
// GEMM spends as long packing both operands as multiplying them; this
// kernel reads A's columns in place and broadcasts B's elements, keeping a
// block of C in registers (Eigen's SIMD packets: AVX-512, AVX2 or SSE).
#ifndef SPINNET_CORE_SMALL_GEMM_H_
#define SPINNET_CORE_SMALL_GEMM_H_

#include <Eigen/Core>

#include "core/eigen_types.h"

namespace spinnet {

// A operand: column kk is a[kk * lda .. kk * lda + rows).
template <typename T>
struct ColMajor {
  const T* a;
  Index lda;
};
// B operand: B(kk, j) = b[kk * row_stride + j * col_stride].
template <typename T>
struct Strided {
  const T* b;
  Index row_stride, col_stride;
};

namespace small_gemm_internal {

// Columns [j0, j0 + NB) and rows [i0, i0 + RB packets) of C.
template <typename T, int RB, int NB, bool kAccumulate>
inline void Block(Index i0, Index j0, Index k, ColMajor<T> a, Strided<T> b,
                  T* c, Index ldc) {
  using Packet = typename Eigen::internal::packet_traits<T>::type;
  constexpr int P = Eigen::internal::packet_traits<T>::size;
  Packet acc[NB][RB];
  for (int j = 0; j < NB; ++j) {
    for (int r = 0; r < RB; ++r) {
      acc[j][r] =
          kAccumulate
              ? Eigen::internal::ploadu<Packet>(c + (j0 + j) * ldc + i0 + r * P)
              : Eigen::internal::pset1<Packet>(T(0));
    }
  }
  const T* a_col = a.a + i0;
  const T* b_row = b.b + j0 * b.col_stride;
  for (Index kk = 0; kk < k; ++kk) {
    Packet av[RB];
    for (int r = 0; r < RB; ++r) {
      av[r] = Eigen::internal::ploadu<Packet>(a_col + r * P);
    }
    for (int j = 0; j < NB; ++j) {
      const Packet bv = Eigen::internal::pset1<Packet>(b_row[j * b.col_stride]);
      for (int r = 0; r < RB; ++r) {
        acc[j][r] = Eigen::internal::pmadd(av[r], bv, acc[j][r]);
      }
    }
    a_col += a.lda;
    b_row += b.row_stride;
  }
  for (int j = 0; j < NB; ++j) {
    for (int r = 0; r < RB; ++r) {
      Eigen::internal::pstoreu(c + (j0 + j) * ldc + i0 + r * P, acc[j][r]);
    }
  }
}

// All columns of rows [i0, i0 + RB packets): blocks of 8 columns, then one
// at a time.
template <typename T, int RB, bool kAccumulate>
inline void Rows(Index i0, Index n, Index k, ColMajor<T> a, Strided<T> b, T* c,
                 Index ldc) {
  Index j = 0;
  for (; j + 8 <= n; j += 8) {
    Block<T, RB, 8, kAccumulate>(i0, j, k, a, b, c, ldc);
  }
  for (; j < n; ++j) Block<T, RB, 1, kAccumulate>(i0, j, k, a, b, c, ldc);
}

}  // namespace small_gemm_internal

// C = A B (kAccumulate false) or C += A B (true); C is M x n column-major
// with leading dimension ldc. C must not overlap A or B.
template <bool kAccumulate, typename T>
void SmallGemm(Index m, Index n, Index k, ColMajor<T> a, Strided<T> b, T* c,
               Index ldc) {
  if (n == 1 && b.row_stride == 1) {
    // A matrix-vector product (a streaming session's batch of one): one
    // column block would be a single chain of dependent multiply-adds;
    // Eigen's GEMV keeps several partial sums in flight.
    const Eigen::Map<const MatrixT<T>, 0, Eigen::OuterStride<>> am(
        a.a, m, k, Eigen::OuterStride<>(a.lda));
    const Eigen::Map<const VectorT<T>> bv(b.b, k);
    Eigen::Map<VectorT<T>> cv(c, m);
    if (kAccumulate) {
      cv.noalias() += am * bv;
    } else {
      cv.noalias() = am * bv;
    }
    return;
  }
  constexpr int P = Eigen::internal::packet_traits<T>::size;
  namespace in = small_gemm_internal;
  Index i = 0;
  for (; i + 2 * P <= m; i += 2 * P) {
    in::Rows<T, 2, kAccumulate>(i, n, k, a, b, c, ldc);
  }
  for (; i + P <= m; i += P) in::Rows<T, 1, kAccumulate>(i, n, k, a, b, c, ldc);
  // Rows that fill no packet: plain loops.
  for (; i < m; ++i) {
    for (Index j = 0; j < n; ++j) {
      T sum = kAccumulate ? c[j * ldc + i] : T(0);
      for (Index kk = 0; kk < k; ++kk) {
        sum += a.a[kk * a.lda + i] * b.b[kk * b.row_stride + j * b.col_stride];
      }
      c[j * ldc + i] = sum;
    }
  }
}

// Operands from Eigen column-major matrices, maps and blocks.
template <typename M>
ColMajor<typename M::Scalar> Lhs(const M& m) {
  return {m.data(), m.outerStride()};
}
template <typename M>
Strided<typename M::Scalar> Rhs(const M& m) {  // B = m
  return {m.data(), 1, m.outerStride()};
}
template <typename M>
Strided<typename M::Scalar> RhsTransposed(const M& m) {  // B = m^T
  return {m.data(), m.outerStride(), 1};
}

}  // namespace spinnet

#endif  // SPINNET_CORE_SMALL_GEMM_H_
