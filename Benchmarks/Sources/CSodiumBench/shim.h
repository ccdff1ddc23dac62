// libsodium for the raw AEAD baseline inside the transport benchmark suite (the root package keeps its
// own CSodium internal to MeshSecurity).
#include <sodium.h>
