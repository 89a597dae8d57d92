package store

import (
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// firstReplicaMigration is the first migration written after replicas
// could run side by side; the earlier ones predate the rule.
const firstReplicaMigration = 16

// unsafeForSkew are statements the previous version of the server may
// trip over while it still runs beside a new one during a rolling upgrade:
// what it reads or writes is gone, renamed, or of another type.
var (
	unsafeForSkew = regexp.MustCompile(`(?i)\b(DROP\s+(TABLE|COLUMN|INDEX|CONSTRAINT)|RENAME\b|ALTER\s+COLUMN\s+\S+\s+(SET\s+DATA\s+)?TYPE|SET\s+NOT\s+NULL)`)
	// A column the previous version does not know must have a default,
	// or its inserts fail.
	addColumn  = regexp.MustCompile(`(?i)\bADD\s+COLUMN\s+[^,;]*`)
	notNull    = regexp.MustCompile(`(?i)\bNOT\s+NULL\b`)
	hasDefault = regexp.MustCompile(`(?i)\bDEFAULT\b`)
)

// skewHazard is the part of stmt that the previous version may trip
// over, or "".
func skewHazard(stmt string) string {
	if m := unsafeForSkew.FindString(stmt); m != "" {
		return m
	}
	for _, add := range addColumn.FindAllString(stmt, -1) {
		if notNull.MatchString(add) && !hasDefault.MatchString(add) {
			return add
		}
	}
	return ""
}

// TestMigrationsExpandThenContract: replicas of one version apart share
// the database during a rolling upgrade, so a migration's Up only expands
// the schema (new tables, nullable or defaulted columns, indexes). A
// contraction — dropping or retyping what an older version used — is
// marked "-- contract: <why no version still running uses it>", and ships
// a version after the code stopped using it.
func TestMigrationsExpandThenContract(t *testing.T) {
	t.Parallel()
	for _, engine := range []string{engineSQLite, enginePostgres} {
		dir := "migrations/" + engine
		entries, err := fs.ReadDir(migrations, dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			n, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
			if err != nil || n < firstReplicaMigration {
				continue
			}
			data, err := fs.ReadFile(migrations, dir+"/"+e.Name())
			if err != nil {
				t.Fatal(err)
			}
			up, _, _ := strings.Cut(string(data), "-- +goose Down")
			if strings.Contains(up, "-- contract:") {
				continue
			}
			for _, stmt := range strings.Split(stripComments(up), ";") {
				if m := skewHazard(stmt); m != "" {
					t.Errorf("%s/%s: %q would break the previous version during a rolling upgrade; mark it -- contract: <why> if nothing running uses it", dir, e.Name(), strings.TrimSpace(m))
				}
			}
		}
	}
}

// stripComments drops SQL line comments.
func stripComments(sql string) string {
	var b strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// TestSkewRuleCatches keeps the rule able to fail.
func TestSkewRuleCatches(t *testing.T) {
	t.Parallel()
	for _, stmt := range []string{
		"ALTER TABLE environments DROP COLUMN cpu_cores",
		"DROP TABLE leases",
		"ALTER TABLE a RENAME TO b",
		"ALTER TABLE environments ALTER COLUMN cpu_cores TYPE DOUBLE PRECISION",
		"ALTER TABLE x ALTER COLUMN y SET NOT NULL",
		"ALTER TABLE x ADD COLUMN y TEXT NOT NULL",
	} {
		if skewHazard(stmt) == "" {
			t.Errorf("%q passed the rule", stmt)
		}
	}
	for _, stmt := range []string{
		"CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL)",
		"ALTER TABLE x ADD COLUMN y TEXT NOT NULL DEFAULT ''",
		"CREATE INDEX leases_expiry ON leases (expires_at_ms)",
	} {
		if m := skewHazard(stmt); m != "" {
			t.Errorf("%q refused (%q)", stmt, m)
		}
	}
}
