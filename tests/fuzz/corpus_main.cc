// The corpus regression driver: a fuzz target's LLVMFuzzerTestOneInput
// compiled with the normal build (no libFuzzer) and run once on every file
// of the directories given, in name order. A crash or a failed FUZZ_CHECK
// aborts the test. The first directory (the target's seed corpus) must
// hold at least one file; the others (its regressions) may be absent.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR [REGRESSION_DIR...]\n", argv[0]);
    return 2;
  }
  int total = 0;
  for (int a = 1; a < argc; ++a) {
    const fs::path dir = argv[a];
    std::vector<fs::path> files;
    if (fs::is_directory(dir)) {
      for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
    }
    if (a == 1 && files.empty()) {
      std::fprintf(stderr, "no inputs in corpus %s\n", dir.c_str());
      return 1;
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      std::ifstream in(file, std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
      std::fprintf(stderr, "%s (%zu bytes)\n", file.c_str(), bytes.size());
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()),
                             bytes.size());
      ++total;
    }
  }
  std::printf("%d inputs ran\n", total);
  return 0;
}
