// glibc's malloc tuning (`mallopt`), for `MeshTransport.ProcessAllocator`. Other C libraries have no
// <malloc.h> with these settings; there the module is empty and the Swift side does nothing.
#if defined(__linux__)
#include <features.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#endif
