package store

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"
)

// sqliteTimeLayout is how times are stored on SQLite: fixed width, so that
// comparing and sorting the TEXT column orders by time, and UTC with
// microseconds, the precision PostgreSQL keeps, so both engines return the
// same value.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

// normTime is what a time looks like after a round trip through either
// engine. Values the store returns are normalised with it, so a struct handed
// back by Create or Update equals the one a later Get reads.
func normTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func normTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	n := normTime(*t)
	return &n
}

// timeArg is the query argument for t on this engine.
func (db *DB) timeArg(t time.Time) any {
	t = normTime(t)
	if db.engine == engineSQLite {
		return t.Format(sqliteTimeLayout)
	}
	return t
}

// nullTimeArg maps nil to SQL NULL.
func (db *DB) nullTimeArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return db.timeArg(*t)
}

// zeroNullTimeArg maps the zero time to SQL NULL, for optional times the
// model keeps as a plain time.Time.
func (db *DB) zeroNullTimeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return db.timeArg(t)
}

// timeCol scans a time column of either engine into a UTC time. SQL NULL
// becomes the zero time.
type timeCol struct{ dst *time.Time }

func (c timeCol) Scan(src any) error {
	t, ok, err := parseTimeValue(src)
	if err != nil {
		return err
	}
	if !ok {
		*c.dst = time.Time{}
		return nil
	}
	*c.dst = t
	return nil
}

// nullTimeCol scans a nullable time column; SQL NULL becomes nil.
type nullTimeCol struct{ dst **time.Time }

func (c nullTimeCol) Scan(src any) error {
	t, ok, err := parseTimeValue(src)
	if err != nil {
		return err
	}
	if !ok {
		*c.dst = nil
		return nil
	}
	*c.dst = &t
	return nil
}

func parseTimeValue(src any) (time.Time, bool, error) {
	var s string
	switch v := src.(type) {
	case nil:
		return time.Time{}, false, nil
	case time.Time:
		return v.UTC(), true, nil
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		return time.Time{}, false, fmt.Errorf("store: cannot scan %T as a time", src)
	}
	// RFC 3339 rather than the exact storage layout, so values an operator
	// wrote by hand (fewer fraction digits, an offset) still read back.
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: stored time %q: %w", s, err)
	}
	return t.UTC(), true, nil
}

// jsonArg encodes a map or slice for a JSON column (TEXT on SQLite, JSONB on
// PostgreSQL). A nil map or slice is stored as SQL NULL and an empty one as
// {} or [], so nil and empty both survive the round trip.
func jsonArg(v any) (any, error) {
	rv := reflect.ValueOf(v)
	if (rv.Kind() == reflect.Map || rv.Kind() == reflect.Slice) && rv.IsNil() {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T as JSON: %w", v, err)
	}
	return string(b), nil
}

// jsonCol scans a JSON column into dst (a pointer). SQL NULL leaves dst as is.
type jsonCol struct{ dst any }

func (c jsonCol) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		return nil
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("store: cannot scan %T as JSON", src)
	}
	if err := json.Unmarshal(b, c.dst); err != nil {
		return fmt.Errorf("store: stored JSON: %w", err)
	}
	return nil
}
