// A main for fuzz harnesses where libFuzzer is unavailable (GCC): runs every file of the given
// corpus directories (or files) through LLVMFuzzerTestOneInput, then a few thousand random
// inputs from a fixed seed, so GCC builds also exercise the harnesses. A harness reports a
// finding by aborting, exactly as under libFuzzer.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

void replay_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t replayed = 0;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path target(argv[i]);
    if (std::filesystem::is_directory(target)) {
      for (const auto& entry : std::filesystem::directory_iterator(target)) {
        if (!entry.is_regular_file()) continue;
        replay_file(entry.path());
        ++replayed;
      }
    } else if (std::filesystem::exists(target)) {
      replay_file(target);
      ++replayed;
    } else {
      std::fprintf(stderr, "replay: no such corpus file or directory: %s\n", argv[i]);
      return 2;
    }
  }

  constexpr int random_inputs = 5000;
  std::mt19937 random(20261121);
  std::uniform_int_distribution<int> length(0, 256);
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<std::uint8_t> input;
  for (int i = 0; i < random_inputs; ++i) {
    input.resize(static_cast<std::size_t>(length(random)));
    for (auto& b : input) b = static_cast<std::uint8_t>(byte(random));
    LLVMFuzzerTestOneInput(input.data(), input.size());
  }
  std::printf("replay: %zu corpus inputs and %d random inputs passed\n", replayed, random_inputs);
  return 0;
}
