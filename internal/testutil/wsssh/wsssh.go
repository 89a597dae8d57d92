// Package wsssh runs commands in a workspace over SSH through a Dev8
// server's tunnel, for tests that need to look inside a workspace.
package wsssh

import (
	"context"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"dev8.dev/dev8/sdk"
)

// Run runs cmd in environment envID and returns its combined output. It
// fails the test if the connection, the handshake or the command fails.
func Run(t testing.TB, ctx context.Context, c *sdk.Client, envID, cmd string) string {
	t.Helper()
	conn, err := c.DialSSH(ctx, envID)
	if err != nil {
		t.Fatalf("dial SSH: %v", err)
	}
	cc, chans, reqs, err := ssh.NewClientConn(conn, "dev8", &ssh.ClientConfig{
		User:            "dev8",
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // the tunnel is authenticated by the server
		Timeout:         30 * time.Second,
	})
	if err != nil {
		t.Fatalf("SSH handshake: %v", err)
	}
	client := ssh.NewClient(cc, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.CombinedOutput(cmd)
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return string(out)
}
