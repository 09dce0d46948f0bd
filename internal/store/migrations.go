package store

// migrations[i] moves a database from schema version i+1 to i+2, in the same transaction
// as schema.sql (version 1, applied with "if not exists" on every start). A fresh database
// runs them all. Append only: a released step is never edited.
var migrations = []string{}
