package azblobstore

import (
	"net/url"
	"os"
	"testing"

	"dev8.dev/dev8/internal/snapshot/azblobstore/azuritetest"
	"dev8.dev/dev8/internal/testutil/extserver"
	"dev8.dev/dev8/internal/testutil/wait"
)

// Azurite's development account.
const (
	devAccount = azuritetest.Account
	devKey     = azuritetest.Key
)

// One Azurite serves every test of the package (it takes a few seconds to
// start); each test uses containers of its own.
var shared extserver.Shared[*azuritetest.Server]

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

// azurite starts Azurite on first use. Without it the test is skipped
// (failed under CI).
func azurite(t *testing.T) *azuritetest.Server {
	t.Helper()
	return shared.Get(t, azuritetest.Binary(t), azuritetest.Launch)
}

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// newStore opens a store in a new Azurite container, under prefix, with
// the credentials in a connection string.
func newStore(t *testing.T, prefix string) *Store {
	t.Helper()
	srv := azurite(t)
	u := &url.URL{Scheme: "azblob", Host: srv.NewContainer(t), Path: "/" + prefix}
	st, err := open(wait.Context(t, wait.VeryLong), u, envMap(map[string]string{EnvConnectionString: srv.ConnectionString()}))
	if err != nil {
		t.Fatal(err)
	}
	return st
}
