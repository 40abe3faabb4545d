// operator* exists only for pointers to object types: a void* handle cannot be dereferenced.
// expect: operator\*|indirection
#include <teardown/unique_resource.hpp>

int main() {
  int value = 0;
  teardown::UniqueResource<void*, void (*)(void*)> owner(&value, [](void*) {});
#ifdef TEARDOWN_COMPILE_FAIL
  (void)*owner;
#else
  (void)owner.get();
#endif
}
