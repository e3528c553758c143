// Splitting a batch over threads.
#ifndef SPINNET_CORE_PARALLEL_H_
#define SPINNET_CORE_PARALLEL_H_

#include <functional>

namespace spinnet {

// Calls fn(part, begin, end) for `parts` contiguous, nearly equal ranges
// covering [0, n), part 0 on the calling thread and the others on their own
// threads; returns when all are done. Empty ranges are skipped.
void ParallelFor(int parts, int n,
                 const std::function<void(int part, int begin, int end)>& fn);

}  // namespace spinnet

#endif  // SPINNET_CORE_PARALLEL_H_
