// Sanitizer builds only: prints the sanitizer runtime's stack trace from a function with a
// known name. CTest passes it only when that name and this file appear in the trace, i.e.
// when the symbolizer runs. Without one every frame is "<null>" or a bare address, and
// tests/tsan.supp (which matches function names) silently stops suppressing anything.
#include <cstdio>
#include <sanitizer/common_interface_defs.h>

extern "C" __attribute__((noinline)) void odyssey_symbolizer_probe() {
  __sanitizer_print_stack_trace();
  std::fflush(stderr);
}

int main() {
  odyssey_symbolizer_probe();
  std::puts("symbolizer_check: stack trace printed above");
  return 0;
}
