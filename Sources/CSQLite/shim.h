// CSQLite: the system SQLite (Debian libsqlite3-dev). Only MeshStorage imports this module
// (as `internal import CSQLite`); nothing above it sees SQLite.
#ifndef STATEMESH_CSQLITE_SHIM_H
#define STATEMESH_CSQLITE_SHIM_H
#include <sqlite3.h>

/// `SQLITE_TRANSIENT` is a cast macro Swift cannot import: SQLite copies the bound bytes.
static inline sqlite3_destructor_type csqlite_transient(void) {
    return SQLITE_TRANSIENT;
}
#endif
