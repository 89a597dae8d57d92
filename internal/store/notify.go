package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Notifications reach every replica on the same PostgreSQL database
// (NOTIFY/LISTEN): how one replica's changes reach the others' live
// views. They are delivered once their transaction commits, and only to
// listeners connected then: a listener that reconnects may have missed
// some. On SQLite, where a server is alone, Notify does nothing and
// Listen hears nothing.

// Notify sends payload (up to 8000 bytes) to the listeners of channel.
func (db *DB) Notify(ctx context.Context, channel, payload string) error {
	if db.engine != enginePostgres {
		return nil
	}
	if _, err := db.writer.ExecContext(ctx, `SELECT pg_notify($1, $2)`, channel, payload); err != nil {
		return fmt.Errorf("store: notify %s: %w", channel, err)
	}
	return nil
}

// Listen calls heard with every payload sent to channel, in order, until
// ctx ends (it then returns nil) or its connection fails (it returns the
// error; the caller listens again, and should assume it missed payloads
// meanwhile). ready, if not nil, is called once the connection listens.
// Each Listen holds a connection of its own outside the pool.
func (db *DB) Listen(ctx context.Context, channel string, ready func(), heard func(payload string)) error {
	if db.engine != enginePostgres {
		if ready != nil {
			ready()
		}
		<-ctx.Done()
		return nil
	}
	conn, err := pgx.Connect(ctx, db.databaseURL)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		// pgx's errors name the host and user, never the password.
		return fmt.Errorf("store: listen %s: connect: %w", channel, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("store: listen %s: %w", channel, err)
	}
	if ready != nil {
		ready()
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return nil
			}
			return fmt.Errorf("store: listen %s: %w", channel, err)
		}
		heard(n.Payload)
	}
}
