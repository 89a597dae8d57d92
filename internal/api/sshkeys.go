package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"golang.org/x/crypto/ssh"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/store"
)

type sshKeyJSON struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	PublicKey   string    `json:"public_key"`
	Fingerprint string    `json:"fingerprint"`
	Type        string    `json:"type"`
	Comment     string    `json:"comment"`
	CreatedAt   time.Time `json:"created_at"`
}

func toSSHKeyJSON(k store.SSHKey) sshKeyJSON {
	j := sshKeyJSON{ID: k.ID, Name: k.Name, PublicKey: k.PublicKey, Fingerprint: k.Fingerprint, CreatedAt: k.CreatedAt}
	if pub, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey)); err == nil {
		j.Type, j.Comment = pub.Type(), comment
	}
	return j
}

type createSSHKeyRequest struct {
	Name      string `json:"name"`
	PublicKey string `json:"public_key"`
}

// parsePublicKey accepts exactly one OpenSSH public key line (as in a .pub
// file or authorized_keys, without options) and returns it normalised,
// with its comment. What it refuses is never echoed back: a pasted private
// key must not travel further.
func parsePublicKey(text string) (ssh.PublicKey, string, error) {
	text = strings.TrimSpace(text)
	switch {
	case text == "":
		return nil, "", httpapi.Validation("public_key: is required")
	case len(text) > maxPublicKeyLength:
		return nil, "", httpapi.Validation(fmt.Sprintf("public_key: at most %d bytes", maxPublicKeyLength))
	case strings.Contains(text, "PRIVATE KEY"):
		return nil, "", httpapi.Validation("public_key: this is a private key; send the public key (the .pub file) and keep the private key to yourself")
	}
	if _, err := ssh.ParseRawPrivateKey([]byte(text)); err == nil {
		return nil, "", httpapi.Validation("public_key: this is a private key; send the public key (the .pub file)")
	}
	pub, comment, options, rest, err := ssh.ParseAuthorizedKey([]byte(text))
	switch {
	case err != nil:
		return nil, "", httpapi.Validation(`public_key: not an OpenSSH public key (expected one line such as "ssh-ed25519 AAAA… you@host")`)
	case len(strings.TrimSpace(string(rest))) > 0:
		return nil, "", httpapi.Validation("public_key: send one key per request")
	case len(options) > 0:
		return nil, "", httpapi.Validation("public_key: authorized_keys options are not accepted; send the key alone")
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return nil, "", httpapi.Validation("public_key: certificates are not accepted; send the public key itself")
	}
	switch pub.Type() {
	case ssh.KeyAlgoDSA:
		return nil, "", httpapi.Validation("public_key: DSA keys are not accepted (they are insecure); use ssh-ed25519")
	case ssh.KeyAlgoRSA:
		if cpk, ok := pub.(ssh.CryptoPublicKey); ok {
			if rsaKey, ok := cpk.CryptoPublicKey().(interface{ Size() int }); ok && rsaKey.Size()*8 < minRSAKeyBits {
				return nil, "", httpapi.Validation(fmt.Sprintf("public_key: RSA keys need at least %d bits; use ssh-ed25519", minRSAKeyBits))
			}
		}
	}
	return pub, strings.TrimSpace(comment), nil
}

func (a *API) createSSHKey(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	st, _, err := a.secretsReady()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var req createSSHKeyRequest
	if err := httpapi.DecodeJSON(r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	pub, comment, err := parsePublicKey(req.PublicKey)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		name = comment
	}
	if name == "" {
		name = pub.Type()
	}
	if err := httpapi.CheckLabel("name", name, maxSSHKeyNameLength); err != nil {
		a.writeError(w, r, err)
		return
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	if comment != "" && httpapi.CheckLabel("comment", comment, 256) == nil {
		line += " " + comment
	}
	k, err := st.CreateSSHKey(r.Context(), store.SSHKey{UserID: caller.ID, Name: name, PublicKey: line, Fingerprint: ssh.FingerprintSHA256(pub)})
	if errors.Is(err, store.ErrConflict) {
		a.writeError(w, r, &httpapi.Error{Status: http.StatusConflict, Code: httpapi.CodeConflict, Message: "SSH key already registered",
			Details: "a key with this fingerprint is registered already; each key may belong to one account"})
		return
	}
	if err != nil {
		a.writeError(w, r, fmt.Errorf("create ssh key: %w", err))
		return
	}
	a.log.InfoContext(r.Context(), "ssh key added", "user", caller.ID, "key", k.ID, "fingerprint", k.Fingerprint)
	a.audit(r, "ssh_key.create", "ssh_key", k.ID, true, map[string]any{"name": k.Name, "fingerprint": k.Fingerprint})
	w.Header().Set("Location", "/api/v1/ssh-keys")
	httpapi.WriteJSON(w, http.StatusCreated, map[string]any{"ssh_key": toSSHKeyJSON(k)})
}

func (a *API) listSSHKeys(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	st, _, err := a.secretsReady()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	keys, err := st.ListSSHKeys(r.Context(), caller.ID)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("list ssh keys: %w", err))
		return
	}
	out := make([]sshKeyJSON, len(keys))
	for i, k := range keys {
		out[i] = toSSHKeyJSON(k)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"ssh_keys": out})
}

func (a *API) deleteSSHKey(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	st, _, err := a.secretsReady()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	id := chi.URLParam(r, "id")
	err = st.DeleteSSHKey(r.Context(), caller.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		a.writeError(w, r, httpapi.NotFound("SSH key"))
		return
	}
	if err != nil {
		a.writeError(w, r, fmt.Errorf("delete ssh key: %w", err))
		return
	}
	a.log.InfoContext(r.Context(), "ssh key removed", "user", caller.ID, "key", id)
	a.audit(r, "ssh_key.delete", "ssh_key", id, true, nil)
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"message": "SSH key removed", "id": id})
}

// ---- environment secrets ----
