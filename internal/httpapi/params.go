package httpapi

import (
	"fmt"
	"strconv"
)

// IntParam parses the query parameter name's value v: def when it is
// empty, else an integer in [lo, hi], or a validation error that says so.
func IntParam(v, name string, def, lo, hi int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, Validation(fmt.Sprintf("%s: must be an integer between %d and %d", name, lo, hi))
	}
	return n, nil
}
