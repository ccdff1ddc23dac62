// CSodium: the one C boundary of StateMesh. Only MeshSecurity imports this module
// (as `internal import CSodium`); nothing above it sees libsodium.
#ifndef STATEMESH_CSODIUM_SHIM_H
#define STATEMESH_CSODIUM_SHIM_H
#include <sodium.h>
#endif
