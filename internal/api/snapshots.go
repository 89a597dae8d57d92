package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/backup"
	"dev8.dev/dev8/internal/gateway"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/snapshot"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// Snapshots of workspaces (issue 7): the handlers. The work — jobs in the
// workspace's supervisor, the records, forks, lost-volume restores, the
// schedule — is the backup service's (internal/backup).

// toBackupJSON renders b as the API shows it (the sdk's Snapshot).
func toBackupJSON(b store.Backup) sdk.Snapshot {
	return sdk.Snapshot{ID: b.ID, EnvironmentID: b.EnvironmentID, Trigger: string(b.Trigger), Status: string(b.Status),
		SnapshotID: b.SnapshotID, SizeBytes: b.SizeBytes, ChangedBytes: b.ChangedBytes, FileCount: b.FileCount,
		DurationMS: b.Duration.Milliseconds(), Error: b.Error, CreatedAt: b.CreatedAt, CompletedAt: b.CompletedAt}
}

// requireSnapshots refuses when this server keeps no snapshots.
func (a *API) requireSnapshots() error {
	if !a.backups.Available() {
		return &httpapi.Error{Status: http.StatusServiceUnavailable, Code: httpapi.CodeNotReady, Message: "Snapshots are not available", Details: "this server has no snapshot repository"}
	}
	return nil
}

// requireWorkspace refuses a job for an environment that is not running,
// whose lost storage is being restored, or whose supervisor cannot be
// reached now.
func (a *API) requireWorkspace(ctx context.Context, env store.Environment) error {
	if err := gateway.RequireRunning(env); err != nil {
		return err
	}
	if err := a.requireNotRestoring(env.ID); err != nil {
		return err
	}
	// A workspace that just became RUNNING connects its supervisor a
	// moment later: a snapshot asked for at once waits for it, briefly.
	ctx, cancel := context.WithTimeout(ctx, workspaceConnectWait)
	defer cancel()
	if err := a.tunnels.Await(ctx, env.ID); err != nil {
		return gateway.StreamError(err)
	}
	return nil
}

// requireNotRestoring refuses snapshot work on an environment whose
// workspace is being restored (a lost volume's or a fork's files).
func (a *API) requireNotRestoring(envID string) error {
	backupID, ok := a.backups.Restoring(envID)
	if !ok {
		return nil
	}
	return &httpapi.Error{Status: http.StatusConflict, Code: httpapi.CodeInvalidState, Message: "The workspace is being restored",
		Details: fmt.Sprintf("snapshot %s is being restored into it (its restoring_snapshot is set until that is done)",
			backupID)}
}

// workspaceConnectWait bounds how long a snapshot or restore request waits
// for a RUNNING workspace's supervisor to connect.
const workspaceConnectWait = 10 * time.Second

// createSnapshot takes a MANUAL snapshot: 202 with the PENDING record; the
// snapshot runs in the background (GET .../snapshots/{sid} follows it).
func (a *API) createSnapshot(w http.ResponseWriter, r *http.Request) {
	env := httpmw.Environment(r)
	var body struct{}
	if err := httpapi.DecodeJSON(r, &body, true); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.requireSnapshots(); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.requireWorkspace(r.Context(), env); err != nil {
		a.writeError(w, r, err)
		return
	}
	b, err := a.backups.CreateManual(r.Context(), env)
	var busy *backup.InProgressError
	if errors.As(err, &busy) {
		last := busy.Backup
		a.writeError(w, r, &httpapi.Error{Status: http.StatusConflict, Code: httpapi.CodeInvalidState, Message: "A snapshot is in progress",
			Details: "snapshot " + last.ID + " is " + string(last.Status) + "; wait for it (GET .../snapshots/" + last.ID + ")"})
		return
	}
	a.audit(r, "snapshot.create", "environment", env.ID, err == nil, map[string]any{"name": env.Name, "snapshot": b.ID})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.backups.Start(env, b)
	httpapi.WriteJSON(w, http.StatusAccepted, map[string]any{"snapshot": toBackupJSON(b)})
}

func (a *API) listSnapshots(w http.ResponseWriter, r *http.Request) {
	env := httpmw.Environment(r)
	if err := a.requireSnapshots(); err != nil {
		a.writeError(w, r, err)
		return
	}
	list, err := a.backups.List(r.Context(), env.ID)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	out := make([]sdk.Snapshot, len(list))
	for i, b := range list {
		out[i] = toBackupJSON(b)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"snapshots": out})
}

// snapshotFrom loads {sid}, which must be a snapshot of the request's
// environment.
func (a *API) snapshotFrom(r *http.Request) (store.Backup, error) {
	env := httpmw.Environment(r)
	if err := a.requireSnapshots(); err != nil {
		return store.Backup{}, err
	}
	b, err := a.backups.Get(r.Context(), chi.URLParam(r, "sid"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && b.EnvironmentID != env.ID) {
		return store.Backup{}, httpapi.NotFound("Snapshot")
	}
	return b, err
}

func (a *API) getSnapshot(w http.ResponseWriter, r *http.Request) {
	b, err := a.snapshotFrom(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"snapshot": toBackupJSON(b)})
}

// restoreSnapshot restores a snapshot into its own environment, which must
// be running: the workspace directory (or the entry at path) becomes
// exactly the snapshot's: files are replaced, and files and directories the
// snapshot does not have are removed, except those matching the snapshot's
// excludes (node_modules, caches: they were never in it) and sockets, FIFOs
// and devices. It answers when the restore is done; entries that could not
// be restored (a missing or corrupt chunk) are listed in failures, and the
// rest is restored.
func (a *API) restoreSnapshot(w http.ResponseWriter, r *http.Request) {
	env := httpmw.Environment(r)
	var body struct {
		Path string `json:"path"`
	}
	if err := httpapi.DecodeJSON(r, &body, true); err != nil {
		a.writeError(w, r, err)
		return
	}
	b, err := a.snapshotFrom(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	p, err := cleanSnapshotPath(body.Path)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if b.Status != store.BackupCompleted {
		a.writeError(w, r, &httpapi.Error{Status: http.StatusConflict, Code: httpapi.CodeInvalidState, Message: "Snapshot is not complete",
			Details: "it is " + string(b.Status)})
		return
	}
	if err := a.requireWorkspace(r.Context(), env); err != nil {
		a.writeError(w, r, err)
		return
	}
	// A client that hangs up does not cut the restore short: a workspace
	// half restored is worse than one restored late.
	res, err := a.backups.Restore(context.WithoutCancel(r.Context()), env, b, p)
	if dial := (*backup.DialError)(nil); errors.As(err, &dial) {
		err = gateway.StreamError(dial.Err)
	}
	if err == nil && res.Error != "" {
		err = &httpapi.Error{Status: http.StatusBadGateway, Code: httpapi.CodeUnavailable, Message: "The restore failed", Details: res.Error}
	}
	detail := map[string]any{"name": env.Name, "snapshot": b.ID, "path": p}
	if err != nil {
		detail["error"] = httpapi.ToError(err).Message
	} else {
		detail["failed"] = len(res.Failures)
	}
	a.audit(r, "snapshot.restore", "environment", env.ID, err == nil && len(res.Failures) == 0, detail)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	st := res.Restore
	if st == nil {
		st = &snapshot.RestoreStats{}
	}
	failures := res.Failures
	if failures == nil {
		failures = []snapshot.JobFailure{}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{
		"snapshot": b.ID, "path": p, "files": st.Files, "dirs": st.Dirs, "symlinks": st.Symlinks,
		"bytes": st.Bytes, "removed": res.Removed, "failures": failures, "duration_ms": st.Duration.Milliseconds(),
	})
}

// cleanSnapshotPath validates a path inside a snapshot: relative,
// slash-separated, without "..".
func cleanSnapshotPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if len(p) > 4096 || strings.ContainsRune(p, 0) || strings.HasPrefix(p, "/") {
		return "", httpapi.Validation("path must be relative to the workspace directory")
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", httpapi.Validation(`path must not contain ".."`)
		}
	}
	c := path.Clean(p)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// Forks: POST /environments with from_snapshot creates an environment as
// usual, and the backup service restores the snapshot into it once it runs
// (backup.Service.Fork). The source snapshot may be of any of the caller's
// environments, deleted ones included while the record exists.

// forkSource checks from_snapshot: one of the caller's COMPLETED snapshots.
// Nil when id is empty.
func (a *API) forkSource(ctx context.Context, caller store.User, id string) (*store.Backup, error) {
	if id == "" {
		return nil, nil
	}
	if len(id) > 64 {
		return nil, httpapi.Validation("from_snapshot: at most 64 characters")
	}
	if err := a.requireSnapshots(); err != nil {
		return nil, err
	}
	b, err := a.backups.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && b.UserID != caller.ID) {
		return nil, httpapi.Validation("from_snapshot: no snapshot " + id + " of yours")
	}
	if err != nil {
		return nil, err
	}
	if b.Status != store.BackupCompleted {
		return nil, httpapi.Validation("from_snapshot: snapshot " + id + " is " + string(b.Status) + ", not COMPLETED")
	}
	return &b, nil
}

// verifySnapshots checks the whole repository (admins only): every
// snapshot's record and trees decode, and every chunk they use is there and
// matches its hash. 200 with the report either way; `ok` says whether the
// repository is intact.
func (a *API) verifySnapshots(w http.ResponseWriter, r *http.Request) {
	if err := a.requireSnapshots(); err != nil {
		a.writeError(w, r, err)
		return
	}
	report, err := a.backups.Verify(r.Context())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.audit(r, "snapshot.verify", "repository", "", report.OK(), map[string]any{
		"snapshots": report.Snapshots, "chunks": report.Chunks, "problems": len(report.Problems), "bad_records": len(report.BadRecords)})
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"ok": report.OK(), "report": report})
}
