// Portable, reproducible randomness: std::mt19937_64 is specified bit for bit,
// but the standard distributions are not, so the draws are written here.
#ifndef SPINNET_CORE_RANDOM_H_
#define SPINNET_CORE_RANDOM_H_

#include <cstdint>
#include <random>
#include <vector>

namespace spinnet {

class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  // Derives an independent stream, e.g. Rng(seed, "shuffle", epoch).
  Rng(uint64_t seed, uint64_t stream, uint64_t index = 0);

  double Uniform();                 // [0, 1)
  uint64_t Below(uint64_t n);       // [0, n), unbiased
  double Normal();                  // standard normal (Box-Muller)
  void Shuffle(std::vector<int>* v);  // Fisher-Yates

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0;
};

// Named random streams, so each use of the seed is independent.
enum RngStream : uint64_t {
  kInitStream = 1,
  kMaskStream = 2,
  kShuffleStream = 3,
  kSplitStream = 4,
  kTrainDeviceStream = 5,  // the devices of each training batch
  kTestDeviceStream = 6,   // the test chip
  kDeviceStream = 7,       // per-device factors, from a variability seed
  kNoiseStream = 8,        // thermal noise of one sequence
};

// The seed of an independent stream: what Rng(seed, stream, index) uses.
uint64_t DeriveSeed(uint64_t seed, uint64_t stream, uint64_t index = 0);

// splitmix64: 64 random bits per call from 8 bytes of state, several times
// cheaper than Rng; for the many draws of thermal noise (one per neuron and
// Euler step), where Rng's quality is not needed.
class FastRng {
 public:
  explicit FastRng(uint64_t seed) : state_(seed) {}
  uint64_t Bits() {
    state_ += 0x9e3779b97f4a7c15ULL;
    uint64_t x = state_;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }

 private:
  uint64_t state_;
};

}  // namespace spinnet

#endif  // SPINNET_CORE_RANDOM_H_
