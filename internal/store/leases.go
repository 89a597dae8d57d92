package store

import (
	"context"
	"fmt"
	"time"
)

// nowMS is the database's clock in milliseconds since the epoch: leases
// are timed by it, not by the replicas' clocks, which may disagree.
func (db *DB) nowMS() string {
	if db.engine == enginePostgres {
		// clock_timestamp, not now(): now() is the transaction's start.
		return "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
	}
	return "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
}

// AcquireLease takes the lease name for holder for ttl when nobody holds
// it, its holder let it expire, or holder holds it already (then it is
// renewed). It reports whether holder holds it now.
func (db *DB) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	now := db.nowMS()
	res, err := db.writer.ExecContext(ctx, db.q(`INSERT INTO leases (name, holder, expires_at_ms) VALUES (?, ?, `+now+` + ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at_ms = excluded.expires_at_ms
		WHERE leases.holder = excluded.holder OR leases.expires_at_ms < `+now),
		name, holder, ttl.Milliseconds())
	if err != nil {
		return false, fmt.Errorf("store: acquire lease %s: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: acquire lease %s: %w", name, err)
	}
	return n == 1, nil
}

// RenewLease extends holder's lease name to ttl from now, and reports
// false when holder no longer holds it (another holder took it after it
// expired, or it was released).
func (db *DB) RenewLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	res, err := db.writer.ExecContext(ctx, db.q(`UPDATE leases SET expires_at_ms = `+db.nowMS()+` + ? WHERE name = ? AND holder = ?`),
		ttl.Milliseconds(), name, holder)
	if err != nil {
		return false, fmt.Errorf("store: renew lease %s: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: renew lease %s: %w", name, err)
	}
	return n == 1, nil
}

// ReleaseLease gives holder's lease name back; a lease holder does not
// hold (any more) is left alone.
func (db *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := db.writer.ExecContext(ctx, db.q(`DELETE FROM leases WHERE name = ? AND holder = ?`), name, holder); err != nil {
		return fmt.Errorf("store: release lease %s: %w", name, err)
	}
	return nil
}

// ExpiredLeases lists the names of the leases starting with prefix whose
// holder let them expire without releasing them: work a replica began and
// died in.
func (db *DB) ExpiredLeases(ctx context.Context, prefix string) ([]string, error) {
	rows, err := db.reader.QueryContext(ctx, db.q(`SELECT name FROM leases WHERE substr(name, 1, ?) = ? AND expires_at_ms < `+db.nowMS()+` ORDER BY name`),
		len(prefix), prefix)
	if err != nil {
		return nil, fmt.Errorf("store: expired leases: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("store: expired leases: %w", err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: expired leases: %w", err)
	}
	return names, nil
}

// LeaseHolder says who holds lease name and until when by the database's
// clock in milliseconds; ErrNotFound when nobody does.
func (db *DB) LeaseHolder(ctx context.Context, name string) (holder string, expiresAtMS int64, err error) {
	err = db.reader.QueryRowContext(ctx, db.q(`SELECT holder, expires_at_ms FROM leases WHERE name = ?`), name).Scan(&holder, &expiresAtMS)
	if err != nil {
		return "", 0, lookupErr("lease "+name, err)
	}
	return holder, expiresAtMS, nil
}
