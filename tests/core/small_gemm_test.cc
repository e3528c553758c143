// core/small_gemm.h against Eigen's product: every path of the kernel
// (blocks of two and one SIMD packets of rows, the rows left over, blocks of
// eight columns and single columns, a single column as a matrix-vector
// product), both operand forms, = and +=.
#include "core/small_gemm.h"

#include "gtest/gtest.h"

namespace spinnet {
namespace {

template <typename T>
void Check(Index m, Index n, Index k, bool transposed, bool accumulate) {
  // Operands inside larger matrices, so leading dimensions exceed the sizes.
  const MatrixT<T> a_big = MatrixT<T>::Random(m + 3, k);
  const auto a = a_big.topRows(m);
  const MatrixT<T> b_big =
      transposed ? MatrixT<T>::Random(n + 2, k) : MatrixT<T>::Random(k + 2, n);
  MatrixT<T> c_big = MatrixT<T>::Random(m + 1, n);
  auto c = c_big.topRows(m);
  MatrixT<T> expected = accumulate ? MatrixT<T>(c) : MatrixT<T>::Zero(m, n);
  if (transposed) {
    const auto b = b_big.topRows(n);
    expected.noalias() += a * b.transpose();
    accumulate ? SmallGemm<true>(m, n, k, Lhs(a), RhsTransposed(b), c.data(),
                                 c.outerStride())
               : SmallGemm<false>(m, n, k, Lhs(a), RhsTransposed(b), c.data(),
                                  c.outerStride());
  } else {
    const auto b = b_big.topRows(k);
    expected.noalias() += a * b;
    accumulate
        ? SmallGemm<true>(m, n, k, Lhs(a), Rhs(b), c.data(), c.outerStride())
        : SmallGemm<false>(m, n, k, Lhs(a), Rhs(b), c.data(), c.outerStride());
  }
  const T tol = sizeof(T) == 4 ? 1e-4 : 1e-12;
  EXPECT_LT((MatrixT<T>(c) - expected).norm(), tol * (1 + expected.norm()))
      << m << " x " << n << " x " << k << (transposed ? " B^T" : " B")
      << (accumulate ? " +=" : " =");
}

TEST(SmallGemmTest, MatchesEigenOnEveryPath) {
  for (Index m : {1, 5, 8, 16, 17, 32, 33, 48}) {
    for (Index n : {1, 7, 8, 9, 32}) {
      for (Index k : {1, 3, 64}) {
        for (bool transposed : {false, true}) {
          for (bool accumulate : {false, true}) {
            Check<float>(m, n, k, transposed, accumulate);
            Check<double>(m, n, k, transposed, accumulate);
          }
        }
      }
    }
  }
}

TEST(SmallGemmTest, LeavesRowsOutsideTheBlockAlone) {
  MatrixT<float> c = MatrixT<float>::Constant(40, 8, 7.0f);
  const MatrixT<float> a = MatrixT<float>::Ones(32, 4);
  const MatrixT<float> b = MatrixT<float>::Ones(4, 8);
  auto block = c.middleRows(4, 32);
  SmallGemm<false>(32, 8, 4, Lhs(a), Rhs(b), block.data(), block.outerStride());
  EXPECT_TRUE((c.topRows(4).array() == 7.0f).all());
  EXPECT_TRUE((c.bottomRows(4).array() == 7.0f).all());
  EXPECT_TRUE((block.array() == 4.0f).all());
}

}  // namespace
}  // namespace spinnet
