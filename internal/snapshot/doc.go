// Package snapshot is Dev8's backup engine: incremental, deduplicated,
// verified snapshots of a directory tree (a workspace's files) in a
// repository behind a small [Store] interface.
//
// It has no dependency on the rest of Dev8; the supervisor, the API and the
// CLI call it.
//
// # What is stored
//
// A repository holds blobs and records. Blobs are content-addressed: a
// blob's [ID] is the SHA-256 of its plain contents, so the same bytes are
// stored once across every snapshot and every tree sharing the repository.
// There are two kinds of blob:
//
//   - chunks: pieces of file contents, cut by content-defined chunking
//     (github.com/restic/chunker, Rabin fingerprints) with the repository's
//     fixed polynomial, between 256 KiB and 4 MiB, about 1 MiB on average.
//     Because cut points depend on the contents, an insertion in a large
//     file changes only the chunks around it. A file smaller than the
//     minimum is one chunk.
//   - trees: one per directory, the JSON encoding of a [Tree] (its entries
//     sorted by name: name, type, mode, size, mtime, uid, gid, inode, ctime,
//     symlink target, a file's chunk IDs, a subdirectory's tree ID). An
//     unchanged directory yields the same tree ID and is stored once.
//
// A stored blob is one header byte and a payload: 0 = the plain contents,
// 1 = a zstd frame of them (github.com/klauspost/compress/zstd); zstd is used
// when it makes the blob smaller. Reading a blob always checks the hash of
// its plain contents, so corruption is never returned as data.
//
// Records are small JSON documents:
//
//   - config/config: the [Config] (format version, chunker polynomial and
//     chunk sizes), written once when the repository is created.
//   - snapshots/<id>: one [Snapshot] per finished snapshot (time, source,
//     root tree ID, the root directory's metadata, excludes, parent, stats).
//     The ID is the snapshot's UTC time (so names sort by time) and a
//     random suffix.
//   - locks/<id>: one per snapshot being written (created, refreshed every 5
//     minutes, host, PID).
//
// [DirStore] keeps them in a directory: data/<2 hex>/<64 hex> for blobs,
// <kind>/<name> for records, tmp/ for writes in progress. Every write goes
// to tmp/, is fsynced, renamed into place, and the directory fsynced, so a
// blob or record is durable when the call returns and a snapshot record is
// never durable before its blobs.
//
// # Snapshots
//
// [Repo.Snapshot] walks the tree. Regular files, directories (empty ones
// included) and symlinks are recorded with their mode (permissions, setuid,
// setgid, sticky), mtime, owner, and size or target. Sockets, devices and
// FIFOs are skipped and counted; hard links are stored as separate files
// (deduplicated, so they cost nothing) and restored as copies.
//
// A file whose size, mtime, inode and ctime equal its entry in the parent
// snapshot (by default the latest snapshot of the same Source) is not opened:
// its chunk list is reused, after one batched Store.Missing call per
// directory confirms the chunks are still stored. A file that changes while
// it is read is stored as read and marked so the next snapshot reads it again.
//
// Chunks and trees are stored first (only the ones the store lacks); the
// snapshot record is written last and atomically. Until then the snapshot
// does not exist: a failure, a cancelled context or a crash leaves at most
// unreferenced blobs, which do not affect earlier snapshots and which the
// next snapshot reuses or Prune removes.
//
// # Excludes
//
// Options.Excludes (per template) replaces the default list,
// [DefaultExcludes]:
//
//	node_modules/  .cache/  __pycache__/  .pytest_cache/  .mypy_cache/
//	.gradle/  dist/  target/  .next/  .nuxt/  .svelte-kit/  .turbo/
//	.parcel-cache/
//
// A pattern ending in "/" matches directories only; a pattern without
// another "/" matches an entry's name at any depth (path.Match syntax: "*.o",
// "build"); a pattern with a "/" matches the path relative to the root
// ("docs/_site/").
//
// # Restore
//
// [Repo.Restore] writes a snapshot, or one file or directory of it, under a
// target directory: contents, modes, mtimes (symlinks' too), owners when
// running as root, symlinks and empty directories. Every chunk is checked
// against its hash. Each file is written to a temporary file beside it and
// renamed into place when complete, so a file that fails (a missing or
// corrupt chunk) is left out, never truncated; the rest of the tree is
// restored and the error joins a [RestoreError] per failed entry.
//
// # Verify
//
// [Repo.Verify] reads every snapshot record, every tree they reference and
// every chunk those trees reference, checking hashes, and reports each
// missing or corrupt blob with the snapshots and paths it affects.
//
// # Retention and pruning
//
// [Retain] keeps, per Source, the newest KeepLast snapshots and the newest
// snapshot of each of the last KeepDaily UTC days ([DefaultRetention]: 10
// and 30). [Repo.Prune] forgets the others and deletes every blob that no
// kept snapshot references, under this rule, which makes it safe while
// snapshots are being written (in this or another process):
//
//  1. Prune reads the locks first. The cutoff is now minus the grace period
//     (default 1 hour, at least 1 second), moved back to the creation time
//     minus the grace period of the oldest live lock (one refreshed within
//     the last 30 minutes).
//  2. It deletes an unreferenced blob only if the blob was last written or
//     refreshed before the cutoff.
//  3. A snapshot in progress refreshes every blob it reuses instead of
//     uploading it (Store.Missing does this, for new chunks, for the chunks
//     of unchanged files, and for unchanged trees), and uploads a blob the
//     store reports missing. So every blob it will reference was written or
//     refreshed after its lock was created, or after Prune read the locks if
//     it started later: either way after the cutoff.
//  4. Store.Delete checks the time and removes the blob atomically with
//     respect to Missing (DirStore renames the blob aside, re-reads its
//     time, and renames it back if it was refreshed; a Missing call in that
//     window reports it missing and the writer uploads it again).
//
// Stale locks (crashed writers) and temporary files older than the grace
// period are removed. If a kept snapshot's record or tree cannot be read,
// Prune deletes nothing and says which snapshot is damaged.
//
// # Limits
//
//   - Blobs are compressed, not encrypted: the store must be trusted.
//   - A directory's tree blob is at most 64 MiB (roughly 200,000 entries in
//     one directory); a larger directory fails the snapshot with an error
//     naming it.
//   - A file that cannot be read (other than one deleted during the walk)
//     fails the snapshot with an error naming it.
//   - Names and symlink targets that are not valid UTF-8 are kept exactly
//     (Node.NameRaw, Node.TargetRaw).
//   - Restore does not delete files that the snapshot does not have; restore
//     into an empty directory for an exact copy.
//   - Stores: [DirStore] here; S3-compatible object storage in the
//     subpackage s3store and Azure Blob in azblobstore (subpackages, so
//     that the supervisor, which imports this package, links no cloud SDK).
//     All of them pass storetest.Run and storetest's concurrent checks; the
//     object stores share objectstore.go. A workspace reaches the server's
//     repository through [RemoteStore]: the job and its frames in remote.go,
//     the server's side ([ServeJob]) in remote_server.go, the workspace's
//     ([AcceptJob], [RemoteStore]) in remote_store.go.
package snapshot
