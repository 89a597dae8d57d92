package replicas

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRelayCredential(t *testing.T) {
	t.Parallel()
	k := tokens{key: bytes.Repeat([]byte{7}, 32)}
	now := time.Unix(1_700_000_000, 0)
	good := k.issue("rep_a", "env_1", now.Add(tokenTTL))
	if err := k.verify(good, "rep_a", "env_1", now); err != nil {
		t.Fatalf("a fresh credential: %v", err)
	}
	exp, mac, _ := strings.Cut(good, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(mac)
	// The last character of 32 bytes' unpadded base64 carries 2 spare
	// bits: another spelling of the same MAC.
	respelled := []byte(mac)
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", respelled[len(respelled)-1])
	respelled[len(respelled)-1] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last^1]
	if got, _ := base64.RawURLEncoding.DecodeString(string(respelled)); !bytes.Equal(got, raw) {
		t.Fatal("the respelling is not the same MAC: the test is wrong")
	}
	flipped := append([]byte(nil), raw...)
	flipped[0] ^= 1
	other := tokens{key: bytes.Repeat([]byte{8}, 32)}
	for name, tc := range map[string]struct {
		token, replica, env string
		at                  time.Time
	}{
		"empty":              {"", "rep_a", "env_1", now},
		"no mac":             {exp, "rep_a", "env_1", now},
		"forged mac":         {exp + "." + base64.RawURLEncoding.EncodeToString(flipped), "rep_a", "env_1", now},
		"other key":          {other.issue("rep_a", "env_1", now.Add(tokenTTL)), "rep_a", "env_1", now},
		"respelled mac":      {exp + "." + string(respelled), "rep_a", "env_1", now},
		"padded mac":         {good + "=", "rep_a", "env_1", now},
		"wrong replica":      {good, "rep_b", "env_1", now},
		"wrong environment":  {good, "rep_a", "env_2", now},
		"expired":            {good, "rep_a", "env_1", now.Add(tokenTTL)},
		"expiry moved":       {strconv.FormatInt(now.Add(time.Hour).Unix(), 10) + "." + mac, "rep_a", "env_1", now},
		"expiry with a sign": {"+" + good, "rep_a", "env_1", now},
		"expiry with a zero": {"0" + good, "rep_a", "env_1", now},
		"too far ahead":      {k.issue("rep_a", "env_1", now.Add(maxTokenTTL+time.Second)), "rep_a", "env_1", now},
	} {
		if err := k.verify(tc.token, tc.replica, tc.env, tc.at); err != errBadToken {
			t.Errorf("%s: verify = %v, want refused", name, err)
		}
	}
}
