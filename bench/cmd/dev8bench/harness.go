package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	neturl "net/url"
	"os"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to create the benchmark's database
	"golang.org/x/crypto/ssh"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/server"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// startServer runs a dev8 server in this process on a loopback port.
var dataDirs = map[*server.Server]string{}

func startServer(ctx context.Context, o options, databaseURL string, mods ...func(*server.Config)) (*server.Server, string, func(), error) {
	dir, err := os.MkdirTemp("", "dev8bench-")
	if err != nil {
		return nil, "", nil, err
	}
	cfg := server.Config{
		DataDir:           dir,
		DatabaseURL:       databaseURL,
		Runtime:           "local",
		SupervisorCommand: o.supervisorCommand(),
		// The sweeps and resyncs are driven by the benchmark itself;
		// seeded RUNNING rows have no process, and a resync would
		// mark them ERROR.
		ReaperInterval: time.Hour,
		ResyncInterval: time.Hour,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		BcryptCost:     auth.MinBcryptCost,
		RateLimits:     httpmw.RateLimits{PrincipalRate: -1, IPRate: -1},
	}
	for _, m := range mods {
		m(&cfg)
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		os.RemoveAll(dir)
		return nil, "", nil, err
	}
	dataDirs[srv] = dir
	serveCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(serveCtx, ln) }()
	cleanup := func() {
		envs, _, _ := srv.Store.ListEnvironments(context.Background(), store.EnvironmentFilter{})
		for _, e := range envs {
			if e.Status != store.StatusStopped {
				_ = srv.RemoveInstance(context.Background(), e)
			}
		}
		stop()
		<-done
		srv.Close()
		os.RemoveAll(dir)
	}
	return srv, "http://" + ln.Addr().String(), cleanup, nil
}

func userToken(ctx context.Context, url, email string) (string, error) {
	c := sdk.New(url, "")
	if _, err := c.Signup(ctx, email, "benchmark-password-1", "Bench"); err != nil {
		return "", err
	}
	token, _, err := c.Login(ctx, email, "benchmark-password-1")
	return token, err
}

// sshReady returns once `true` runs over SSH through the server's tunnel.
func sshReady(ctx context.Context, c *sdk.Client, id string) error {
	var last error
	for ctx.Err() == nil {
		if last = sshTrue(ctx, c, id); last == nil {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
}

func sshTrue(ctx context.Context, c *sdk.Client, id string) error {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := c.DialSSH(dctx, id)
	if err != nil {
		return err
	}
	defer conn.Close()
	cc, chans, reqs, err := ssh.NewClientConn(conn, "dev8", &ssh.ClientConfig{
		User:            "dev8",
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // the tunnel is authenticated by the server
		Timeout:         5 * time.Second,
	})
	if err != nil {
		return err
	}
	client := ssh.NewClient(cc, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return err
	}
	defer sess.Close()
	return sess.Run("true")
}

// freshPostgres creates a new database on the server at base and returns
// its URL and a function that drops it.
func freshPostgres(ctx context.Context, base string) (string, func(), error) {
	db, err := sql.Open("pgx", base)
	if err != nil {
		return "", nil, err
	}
	name := fmt.Sprintf("dev8bench_%d", time.Now().UnixNano())
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u, err := neturl.Parse(base)
	if err != nil {
		db.Close()
		return "", nil, err
	}
	u.Path = "/" + name
	return u.String(), func() {
		if _, err := db.Exec("DROP DATABASE " + name + " WITH (FORCE)"); err != nil && !errors.Is(err, sql.ErrConnDone) {
			fmt.Fprintln(os.Stderr, "drop database:", err)
		}
		db.Close()
	}, nil
}
