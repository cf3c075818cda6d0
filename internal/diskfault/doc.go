// Package diskfault says which of a Pebble database's file operations a
// disk fault hits, for the cluster simulator (internal/sim) and the
// stores' own tests, which inject errors with Pebble's errorfs: one
// definition of "the write-ahead log" and "the metadata" of a database,
// so that a fault the simulator injects is the fault the stores are
// tested against.
//
// A failing device fails writes and syncs with EIO. Pebble answers those
// differently by file:
//
//   - the write-ahead log (*.log): a failed write or sync fails the
//     commit, and Pebble calls its Logger's Fatalf in the goroutine that
//     committed ("pebble: fatal commit error");
//   - the metadata: the MANIFEST (the list of the database's files), the
//     marker files that name the current MANIFEST and format version
//     (Pebble v2's replacement of the CURRENT file, moved by creating the
//     new marker, syncing the directory and removing the old one), the
//     OPTIONS file (written through a temporary file renamed into place)
//     and the syncs of the directory that make creations and renames
//     durable. A failed MANIFEST write or sync, or a failed marker move,
//     is fatal too (versionSet.UpdateVersionLocked and versionSet.create
//     call Fatalf): at Open in the caller's goroutine, while running in
//     the background flush or compaction that records its new files;
//   - the sstables (Table): a failed create, write or sync fails the flush
//     or compaction, which Pebble retries (at once and for ever, for a
//     flush); the state store halts the node once the failures last
//     (store's background.go);
//   - a read of an sstable (TableRead) that fails is returned to the
//     reader (Get's or an iterator's error; "pebble: backing file
//     000005 error: ..."), or fails the compaction reading it. The state
//     store marks it state.ErrStorage, so that a block whose check or
//     execution met it halts the node instead of being rejected.
package diskfault
