package oauth

import (
	"strings"
	"testing"
	"time"
)

func TestStateSigner(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	s := NewStateSigner([]byte("0123456789abcdef0123456789abcdef"), func() time.Time { return now })
	st := State{Provider: "github", State: "s", Verifier: "v", Next: "/x", Expires: now.Add(time.Minute).Unix()}
	v := s.Sign(st)
	if got, ok := s.Open(v); !ok || got != st {
		t.Fatalf("Open(Sign(st)) = %+v, %v", got, ok)
	}
	enc, sig, _ := strings.Cut(v, ".")
	forged := NewStateSigner([]byte("another key of thirty-two bytes!"), func() time.Time { return now }).Sign(State{Provider: "github", Expires: st.Expires})
	for name, bad := range map[string]string{
		"no signature":       enc,
		"other key":          forged,
		"signature of other": enc[:len(enc)-2] + "AA." + sig,
		"empty":              "",
	} {
		if _, ok := s.Open(bad); ok {
			t.Errorf("%s: Open accepted %q", name, bad)
		}
	}
	later := NewStateSigner([]byte("0123456789abcdef0123456789abcdef"), func() time.Time { return now.Add(time.Minute) })
	if _, ok := later.Open(v); ok {
		t.Error("an expired state was accepted")
	}
}
