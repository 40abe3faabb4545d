// A UniqueResource whose deleter is a function pointer cannot be default-constructed: the
// pointer would be null and reset(r) would call through it.
// expect: defaults_to_a_usable_deleter
#include <teardown/unique_resource.hpp>

void close_handle(int) {}

int main() {
#ifdef TEARDOWN_COMPILE_FAIL
  teardown::UniqueResource<int, void (*)(int)> owner;
#else
  teardown::UniqueResource<int, void (*)(int)> owner(5, &close_handle);
#endif
  owner.reset(6);
}
