// A ladder must end with Kill: a child that ignores every gentler rung would otherwise never be
// reaped.
// expect: the last rung must be rung::Kill
#include <teardown/reaper.hpp>

#include <chrono>
#include <csignal>

int main() {
  using namespace std::chrono_literals;
  namespace rung = teardown::rung;
  auto complete = teardown::ladder(rung::Signal{SIGTERM, 1s}, rung::Kill{});
  (void)complete;
#ifdef TEARDOWN_COMPILE_FAIL
  auto endless = teardown::ladder(rung::Wait{1s}, rung::Signal{SIGTERM, 1s});
  (void)endless;
#endif
}
