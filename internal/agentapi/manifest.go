package agentapi

// Manifest is what a workspace's supervisor applies at start and after every
// tunnel reconnect (GET /api/v1/environments/{id}/manifest, agent token
// only): the owner's secrets as environment variables, git identity, GitHub
// token and SSH public keys.
type Manifest struct {
	EnvironmentID string            `json:"environment_id"`
	Env           map[string]string `json:"env"`
	Git           ManifestGit       `json:"git"`
	GitHubToken   string            `json:"github_token"`
	SSHPublicKeys []string          `json:"ssh_public_keys"`
	// Unavailable names secrets that could not be decrypted (sealed under
	// a key this server lacks): the supervisor reports them, never a value.
	Unavailable []string `json:"unavailable"`
}

// ManifestGit is the owner's git identity.
type ManifestGit struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}
