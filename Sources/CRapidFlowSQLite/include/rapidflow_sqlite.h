#ifndef RAPIDFLOW_SQLITE_H
#define RAPIDFLOW_SQLITE_H

/// Turns on SQLite's query planner stability guarantee (SQLITE_DBCONFIG_ENABLE_QPSG) for the
/// connection `db` (a `sqlite3 *` of the SQLite library sqlite-nio builds): plans no longer
/// depend on bound values, so binding new values never expires a prepared statement.
/// Returns SQLite's result code. `sqlite3_db_config` takes variable arguments, which Swift
/// cannot pass: this is the one call made from C.
int rapidflow_sqlite_stable_plans(void *db);

#endif
