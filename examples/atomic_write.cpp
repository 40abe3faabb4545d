// atomic_write: replace a file atomically with teardown's guards and UniqueFd.
//
//   atomic_write [directory]
//
// Writes <directory>/settings.conf twice through a temporary file: once successfully, and once
// with a failure injected half-way. On success the temporary file is renamed over the target;
// on failure a scope_fail guard removes it, so no half-written file is ever left behind, and the
// descriptor is closed on both paths by UniqueFd.
#include <teardown/teardown.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace {

void write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t written = ::write(fd, text.data(), text.size());
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) throw std::system_error(errno, std::generic_category(), "write");
    text.remove_prefix(static_cast<std::size_t>(written));
  }
}

void replace_file(const std::filesystem::path& target, std::string_view contents, bool fail_half_way) {
  const std::string temp = target.string() + ".tmp-XXXXXX";
  std::string temp_path = temp;
  teardown::UniqueFd fd{::mkstemp(temp_path.data())};
  if (!fd) throw std::system_error(errno, std::generic_category(), "mkstemp " + temp);
  std::printf("  opened %s (fd %d)\n", temp_path.c_str(), fd.get());

  auto remove_temp = teardown::scope_fail([&] {
    ::unlink(temp_path.c_str());
    std::printf("  failure: removed %s, %s untouched\n", temp_path.c_str(), target.c_str());
  });
  auto report = teardown::scope_success([&] { std::printf("  success: %s replaced\n", target.c_str()); });

  write_all(fd.get(), contents.substr(0, contents.size() / 2));
  if (fail_half_way) throw std::runtime_error("injected failure half-way through the write");
  write_all(fd.get(), contents.substr(contents.size() / 2));
  if (::fsync(fd.get()) != 0) throw std::system_error(errno, std::generic_category(), "fsync");
  if (::rename(temp_path.c_str(), target.c_str()) != 0) {
    throw std::system_error(errno, std::generic_category(), "rename to " + target.string());
  }
}

std::string read_file(const std::filesystem::path& path) {
  teardown::UniqueFd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (!fd) return "<missing>";
  std::string text(4096, '\0');
  const ssize_t got = ::read(fd.get(), text.data(), text.size());
  text.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  fs::path directory = argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path() / "teardown-atomic-write";
  fs::create_directories(directory);
  TEARDOWN_DEFER { fs::remove_all(directory); };
  const fs::path target = directory / "settings.conf";

  std::printf("1. write version 1\n");
  replace_file(target, "version = 1\nmode = fast\n", false);

  std::printf("2. write version 2, failing half-way\n");
  try {
    replace_file(target, "version = 2\nmode = broken\n", true);
  } catch (const std::exception& e) {
    std::printf("  caught: %s\n", e.what());
  }

  std::size_t leftovers = 0;
  for (const auto& entry : fs::directory_iterator(directory)) leftovers += entry.path() != target;
  std::printf("3. %s still holds:\n%s   leftover temporary files: %zu\n", target.c_str(),
              read_file(target).c_str(), leftovers);
  return leftovers == 0 && read_file(target) == "version = 1\nmode = fast\n" ? 0 : 1;
}
