#include "rapidflow_sqlite.h"

/* sqlite-nio's SQLite, whose symbols carry its prefix; linked in with it. */
extern int sqlite_nio_sqlite3_db_config(void *db, int op, ...);

int rapidflow_sqlite_stable_plans(void *db) {
    const int SQLITE_DBCONFIG_ENABLE_QPSG = 1007;
    return sqlite_nio_sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_QPSG, 1, (int *)0);
}
