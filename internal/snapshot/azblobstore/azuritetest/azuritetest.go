// Package azuritetest runs Azurite, the Azure Storage emulator, for tests:
// the azurite-blob executable named by DEV8_AZURITE, else azurite-blob on
// PATH. .ci/run installs the pinned version from npm and sets DEV8_AZURITE.
package azuritetest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"dev8.dev/dev8/internal/testutil/extserver"
)

// Version is the Azurite the tests are known to pass with; Install gets it.
const (
	Version = "3.37.0"
	Install = "npm install --prefix ~/.cache/dev8/azurite azurite@" + Version +
		" and set DEV8_AZURITE=~/.cache/dev8/azurite/node_modules/.bin/azurite-blob"
)

// Azurite's well-known development account (published in its
// documentation; it opens nothing but the emulator).
const (
	Account = "devstoreaccount1"
	Key     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Server is a running Azurite blob service.
type Server struct {
	// Endpoint is the account's blob service URL,
	// http://127.0.0.1:<port>/devstoreaccount1.
	Endpoint string

	proc *extserver.Process
}

// Binary returns the azurite-blob executable to run, or skips t (fails it
// under CI, where .ci/run must have provided one) when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	return extserver.Binary(t, "DEV8_AZURITE", "azurite-blob",
		"no Azurite: set DEV8_AZURITE to azurite-blob or put it on PATH ("+Install+"; .ci/run does this)")
}

// Start runs Azurite for the rest of the test.
func Start(t testing.TB) *Server {
	t.Helper()
	return extserver.Start(t, Binary(t), Launch)
}

// Launch starts azurite-blob from bin on a free loopback port and waits
// until it answers. The caller must Close it.
func Launch(bin string) (*Server, error) {
	return extserver.Retry("Azurite", bin, launch, func(err error) bool {
		return strings.Contains(err.Error(), "EADDRINUSE")
	})
}

func launch(bin string) (*Server, error) {
	proc, err := extserver.NewProcess("dev8-azurite-")
	if err != nil {
		return nil, err
	}
	port, err := extserver.FreePort()
	if err != nil {
		proc.Close()
		return nil, err
	}
	srv := &Server{Endpoint: fmt.Sprintf("http://127.0.0.1:%d/%s", port, Account), proc: proc}

	cmd := exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", fmt.Sprint(port),
		"--location", proc.Dir, "--silent", "--skipApiVersionCheck")
	pr, pw, err := os.Pipe()
	if err != nil {
		proc.Close()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := proc.Start(cmd); err != nil {
		pw.Close()
		pr.Close()
		return nil, err
	}
	pw.Close()

	// Azurite prints a line when it listens (even with --silent); until
	// then its output goes into the error message if it exits instead.
	ready := make(chan error, 1)
	go func() {
		defer pr.Close()
		var out strings.Builder
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "successfully listens on") {
				ready <- nil
				for sc.Scan() { // keep draining so Azurite never blocks
				}
				return
			}
		}
		ready <- fmt.Errorf("azurite exited: %s", strings.TrimSpace(out.String()))
	}()
	timer := time.NewTimer(2 * time.Minute)
	defer timer.Stop()
	select {
	case err = <-ready:
	case <-timer.C:
		err = errors.New("azurite did not listen within 2 minutes")
	}
	if err == nil {
		err = srv.ping()
	}
	if err != nil {
		srv.Close()
		return nil, err
	}
	return srv, nil
}

// ping checks that the port answers as Azurite.
func (s *Server) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"?comp=list", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if srv := resp.Header.Get("Server"); !strings.HasPrefix(srv, "Azurite-Blob") {
		return fmt.Errorf("%s answered as %q, not Azurite", s.Endpoint, srv)
	}
	return nil
}

// Close stops Azurite and removes its data.
func (s *Server) Close() { s.proc.Close() }

// ConnectionString is the development account's connection string for this
// server (the value for AZURE_STORAGE_CONNECTION_STRING).
func (s *Server) ConnectionString() string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;", Account, Key, s.Endpoint)
}

// ContainerClient returns a client for a container, authorized with the
// development account's key.
func (s *Server) ContainerClient(t testing.TB, name string) *container.Client {
	t.Helper()
	cred, err := container.NewSharedKeyCredential(Account, Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := container.NewClientWithSharedKeyCredential(s.Endpoint+"/"+name, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// NewContainer creates an empty container with a fresh name and returns
// the name.
func (s *Server) NewContainer(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t-" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.ContainerClient(t, name).Create(ctx, nil); err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
	return name
}
