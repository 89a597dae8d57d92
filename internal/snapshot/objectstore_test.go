package snapshot

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

func TestParseBlobKey(t *testing.T) {
	t.Parallel()
	id := Hash([]byte("x"))
	if got, ok := ParseBlobKey(BlobKey(id)); !ok || got != id {
		t.Fatalf("ParseBlobKey(BlobKey(id)) = %v, %v", got, ok)
	}
	h := id.String()
	for _, key := range []string{
		"", "data/", "data/" + h, "data/" + h[2:4] + "/" + h, "data//" + h, "data/" + h[:1] + "/" + h,
		"locks/" + h[:2] + "/" + h, "data/" + h[:2] + "/" + h + ".tmp", "x/data/" + h[:2] + "/" + h,
	} {
		if got, ok := ParseBlobKey(key); ok {
			t.Errorf("ParseBlobKey(%q) = %v, want no blob", key, got.Short())
		}
	}
}

func TestForEachIDAndSelected(t *testing.T) {
	t.Parallel()
	var ids []ID
	for i := range 100 {
		ids = append(ids, Hash([]byte(strings.Repeat("x", i))))
	}
	flags := make([]bool, len(ids))
	var running, most atomic.Int32
	err := ForEachID(context.Background(), ids, func(_ context.Context, i int, id ID) error {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		if id != ids[i] {
			t.Errorf("call %d got id %s", i, id.Short())
		}
		flags[i] = i%7 == 0
		return nil
	})
	if err != nil || most.Load() > MissingConcurrency {
		t.Fatalf("ForEachID = %v with up to %d calls at once", err, most.Load())
	}
	var want []ID
	for i := 0; i < len(ids); i += 7 {
		want = append(want, ids[i])
	}
	if got := Selected(ids, flags); !slices.Equal(got, want) {
		t.Fatalf("Selected = %d ids, want %d in order", len(got), len(want))
	}

	stop := errors.New("stop")
	err = ForEachID(context.Background(), ids, func(ctx context.Context, i int, _ ID) error {
		if i == 0 {
			return stop
		}
		<-ctx.Done() // the first error cancels the others
		return ctx.Err()
	})
	if !errors.Is(err, stop) {
		t.Fatalf("ForEachID = %v, want the first error", err)
	}
}
