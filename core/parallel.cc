#include "core/parallel.h"

#include <algorithm>
#include <thread>
#include <vector>

namespace spinnet {

void ParallelFor(int parts, int n,
                 const std::function<void(int, int, int)>& fn) {
  parts = std::max(1, std::min(parts, n));
  std::vector<std::thread> threads;
  for (int p = 1; p < parts; ++p) {
    const int begin = static_cast<int>(static_cast<long>(n) * p / parts);
    const int end = static_cast<int>(static_cast<long>(n) * (p + 1) / parts);
    threads.emplace_back(fn, p, begin, end);
  }
  if (n > 0) fn(0, 0, static_cast<int>(static_cast<long>(n) / parts));
  for (auto& t : threads) t.join();
}

}  // namespace spinnet
