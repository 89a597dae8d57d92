package cli

// What the list commands (ls, tokens ls, users ls, snapshots) share: --json,
// the table, and how times and money are shown in it.

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// jsonFlag is a list command's --json.
type jsonFlag bool

func (f *jsonFlag) register(cmd *cobra.Command, what string) {
	cmd.Flags().BoolVar((*bool)(f), "json", false, "print the "+what+" as a JSON array (the API's objects)")
}

// printList prints items as --json asks: a JSON array, or the table that
// table writes, or, when there are none and none says what to do then, that.
func printList[T any](out io.Writer, asJSON jsonFlag, items []T, none string, table func(io.Writer, []T, time.Time) error) error {
	if asJSON {
		return printJSONList(out, items)
	}
	if len(items) == 0 && none != "" {
		fmt.Fprintln(out, none)
		return nil
	}
	return table(out, items, time.Now())
}

// printJSONList prints items as an indented JSON array; none is [], not
// null, so scripts can iterate without a check.
func printJSONList[T any](w io.Writer, items []T) error {
	if items == nil {
		items = []T{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(items)
}

// newTable is a table of aligned columns with the given headings; rows are
// tab-separated lines, and Flush writes it.
func newTable(w io.Writer, headings ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(headings, "\t"))
	return tw
}

func formatCost(c float64) string { return fmt.Sprintf("$%.4f", c) }

// ago says how long before now t was, roughly.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}
