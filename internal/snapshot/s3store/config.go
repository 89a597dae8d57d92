package s3store

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Config says where a Store is.
type Config struct {
	Bucket string
	// Prefix is put before every key ("" for none; no leading or trailing
	// slash needed), so that one bucket can hold several repositories.
	Prefix string
	// Endpoint is the server's host[:port]; empty means AWS S3.
	Endpoint string
	// Region: empty lets the client find the bucket's region (AWS) or use
	// us-east-1.
	Region string
	// Insecure talks plain HTTP (a MinIO on localhost, say).
	Insecure bool
	// Creds: nil means the standard chain (see [Open]).
	Creds *credentials.Credentials
}

// ParseURL reads a Config from a URL:
//
//	s3://bucket[/prefix][?endpoint=host:port][&region=name][&insecure=true]
//
// endpoint may also be written http://host:port (which implies insecure) or
// https://host:port. Credentials are refused in the URL: they come from the
// environment (see [Open]).
func ParseURL(u *url.URL) (Config, error) {
	var cfg Config
	if u.Scheme != "s3" {
		return cfg, fmt.Errorf("s3 store: URL scheme is %q, want s3://bucket/prefix", u.Scheme)
	}
	if u.User != nil {
		return cfg, fmt.Errorf("s3 store: credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead")
	}
	cfg.Bucket = u.Host
	if cfg.Bucket == "" {
		return cfg, fmt.Errorf("s3 store: the URL names no bucket (s3://bucket/prefix)")
	}
	if err := s3utils.CheckValidBucketName(cfg.Bucket); err != nil {
		return cfg, fmt.Errorf("s3 store: bucket %q: %w", cfg.Bucket, err)
	}
	cfg.Prefix = strings.Trim(u.Path, "/")
	for key, vals := range u.Query() {
		v := vals[len(vals)-1]
		switch key {
		case "endpoint":
			cfg.Endpoint = v
		case "region":
			cfg.Region = v
		case "insecure":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return cfg, fmt.Errorf("s3 store: insecure=%q: want true or false", v)
			}
			cfg.Insecure = b
		default:
			return cfg, fmt.Errorf("s3 store: unknown URL parameter %q (known: endpoint, region, insecure; credentials come from the environment)", key)
		}
	}
	if scheme, host, ok := strings.Cut(cfg.Endpoint, "://"); ok {
		switch scheme {
		case "http":
			cfg.Insecure = true
		case "https":
		default:
			return cfg, fmt.Errorf("s3 store: endpoint %q: want host:port, http://host:port or https://host:port", cfg.Endpoint)
		}
		cfg.Endpoint = strings.TrimSuffix(host, "/")
	}
	if strings.ContainsAny(cfg.Endpoint, "/?#@") {
		return cfg, fmt.Errorf("s3 store: endpoint %q: want host:port", cfg.Endpoint)
	}
	return cfg, nil
}

// Open opens the store a URL describes (see [ParseURL]) and checks that its
// bucket exists and can be reached with the credentials found, in this
// order, in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (with
// AWS_SESSION_TOKEN for temporary credentials), in the shared credentials
// file (~/.aws/credentials or AWS_SHARED_CREDENTIALS_FILE, profile
// AWS_PROFILE or "default"), or from an IAM role (EC2 instance profile, ECS
// task role, EKS web identity).
func Open(ctx context.Context, u *url.URL) (*Store, error) {
	cfg, err := ParseURL(u)
	if err != nil {
		return nil, err
	}
	return New(ctx, cfg)
}

// New opens the store cfg describes and checks its bucket, like [Open].
func New(ctx context.Context, cfg Config) (*Store, error) {
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	where := "s3://" + cfg.Bucket
	if p := strings.Trim(cfg.Prefix, "/"); p != "" {
		where += "/" + p
	}
	where += " at " + endpoint
	if cfg.Insecure {
		where += " (plain HTTP)"
	}
	creds := cfg.Creds
	if creds == nil {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{},
			&credentials.IAM{},
		})
	}
	v, err := creds.GetWithContext(nil)
	if err != nil {
		return nil, fmt.Errorf("s3 store %s: credentials: %w", where, err)
	}
	if v.SignerType.IsAnonymous() {
		return nil, fmt.Errorf("s3 store %s: no credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), use ~/.aws/credentials, or run with an IAM role", where)
	}
	client, err := minio.New(endpoint, &minio.Options{Creds: creds, Secure: !cfg.Insecure, Region: cfg.Region})
	if err != nil {
		return nil, fmt.Errorf("s3 store %s: %w", where, err)
	}
	s := &Store{client: client, bucket: cfg.Bucket, where: where}
	if cfg.Prefix != "" {
		s.prefix = strings.Trim(cfg.Prefix, "/") + "/"
	}

	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ok, err := client.BucketExists(cctx, cfg.Bucket)
	if err != nil {
		switch minio.ToErrorResponse(err).Code {
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken":
			return nil, fmt.Errorf("s3 store %s: the server refused the credentials for this bucket: %w", where, err)
		}
		return nil, fmt.Errorf("s3 store %s: cannot reach the bucket: %w", where, err)
	}
	if !ok {
		return nil, fmt.Errorf("s3 store %s: bucket %q does not exist; create it first", where, cfg.Bucket)
	}
	return s, nil
}
