// A main for fuzz targets where libFuzzer is not available (gcc) or not
// wanted (debugging one crash under gdb): runs LLVMFuzzerTestOneInput once on
// each file named on the command line, or on every file under a named
// directory; with no arguments, on standard input. Flags starting with '-'
// (libFuzzer's) are ignored, so the same command line works for both.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {
int run(const std::string& bytes) {
  // Copy into an exact-size buffer so ASan sees reads past the end.
  std::vector<std::uint8_t> buf(bytes.begin(), bytes.end());
  return LLVMFuzzerTestOneInput(buf.data(), buf.size());
}
}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (!arg.empty() && arg[0] == '-') continue;
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      for (const auto& e : fs::recursive_directory_iterator(arg)) {
        if (e.is_regular_file()) inputs.push_back(e.path());
      }
    } else if (fs::exists(arg, ec)) {
      inputs.emplace_back(arg);
    } else {
      std::cerr << "replay: no such file or directory: " << arg << '\n';
      return 2;
    }
  }
  if (argc == 1) {
    run(std::string(std::istreambuf_iterator<char>(std::cin), {}));
    std::cerr << "replay: 1 input from stdin\n";
    return 0;
  }
  std::sort(inputs.begin(), inputs.end());
  for (const auto& p : inputs) {
    std::ifstream in(p, std::ios::binary);
    run(std::string(std::istreambuf_iterator<char>(in), {}));
  }
  std::cerr << "replay: " << inputs.size() << " input(s) ran\n";
  return 0;
}
