package cli

import "testing"

func TestReadsDotEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{nil, true},
		{[]string{"server"}, true},
		{[]string{"ls", "supervisor"}, true},
		{[]string{"supervisor"}, false},
		{[]string{"supervisor", "--help"}, false},
	} {
		if got := readsDotEnv(tc.args); got != tc.want {
			t.Errorf("readsDotEnv(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}
