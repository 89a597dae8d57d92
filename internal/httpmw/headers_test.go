package httpmw

import (
	"fmt"
	"testing"
)

func TestParseCORSOrigins(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{"https://A.example.com, http://localhost:3000/", []string{"https://a.example.com", "http://localhost:3000"}, false},
		{"*", nil, true},
		{"https://a.example.com/path", nil, true},
		{"ftp://a.example.com", nil, true},
		{"a.example.com", nil, true},
	} {
		got, err := ParseCORSOrigins(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseCORSOrigins(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if !tc.wantErr && fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("ParseCORSOrigins(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
