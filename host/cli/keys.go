package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dsmil/l7/sdk/identity"
)

// runKeysGen writes a new ML-DSA-87 key pair: DIR/NAME.key (mode 0600) and
// DIR/NAME.pub.
func runKeysGen(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keys gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", ".", "directory to write NAME.key and NAME.pub into")
	name := fs.String("name", "", "the key's name (file names NAME.key, NAME.pub)")
	force := fs.Bool("force", false, "replace existing files")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *name == "" {
		fmt.Fprintln(stderr, "usage: dsmil-host keys gen -out DIR -name NAME [-force]")
		return 2
	}
	if err := checkFileName(*name); err != nil {
		fmt.Fprintf(stderr, "keys gen: %v\n", err)
		return 2
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		fmt.Fprintf(stderr, "keys gen: %v\n", err)
		return 1
	}
	keyPath := filepath.Join(*out, *name+".key")
	pubPath := filepath.Join(*out, *name+".pub")
	if *force {
		_ = os.Remove(keyPath)
		_ = os.Remove(pubPath)
	}
	k, err := identity.GenerateKey()
	if err == nil {
		err = identity.WritePrivateKeyFile(keyPath, k)
	}
	if err == nil {
		if err = identity.WritePublicKeyFile(pubPath, k.Public()); err != nil {
			_ = os.Remove(keyPath)
		}
	}
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			err = fmt.Errorf("%w (use -force to replace it)", err)
		}
		fmt.Fprintf(stderr, "keys gen: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "key id:      %s\nprivate key: %s (mode 0600)\npublic key:  %s\n", k.Public().KeyID(), keyPath, pubPath)
	return 0
}

func checkFileName(s string) error {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') || s[0] == '.' {
			return fmt.Errorf("name %q: use letters, digits, '.', '_' and '-' (not first)", s)
		}
	}
	return nil
}

// runKeysBundle signs an identity bundle for a public key with an
// operator root key (or any issuing key).
func runKeysBundle(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keys bundle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rootPath := fs.String("root", "", "the issuing private key file (an operator root)")
	name := fs.String("name", "", "the party's name, e.g. shim, dsmil-host, llm-amx")
	role := fs.String("role", "", "the party's role: host, router, shim, plugin, client")
	pubPath := fs.String("pub", "", "the party's public key file")
	expiry := fs.Duration("expiry", 720*time.Hour, "validity from now")
	notBefore := fs.String("not-before", "", "start of validity, RFC 3339 (default: one minute ago)")
	out := fs.String("out", "", "bundle file to write")
	force := fs.Bool("force", false, "replace an existing bundle file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *rootPath == "" || *name == "" || *role == "" || *pubPath == "" || *out == "" {
		fmt.Fprintln(stderr, "usage: dsmil-host keys bundle -root ROOT.key -name NAME -role ROLE -pub NAME.pub [-expiry 720h] -out NAME.bundle")
		return 2
	}
	from := time.Now().Add(-time.Minute)
	if *notBefore != "" {
		t, err := time.Parse(time.RFC3339, *notBefore)
		if err != nil {
			fmt.Fprintf(stderr, "keys bundle: -not-before: %v\n", err)
			return 2
		}
		from = t
	}
	root, err := identity.LoadPrivateKeyFile(*rootPath)
	if err != nil {
		fmt.Fprintf(stderr, "keys bundle: %v\n", err)
		return 1
	}
	pub, err := identity.LoadPublicKeyFile(*pubPath)
	if err != nil {
		fmt.Fprintf(stderr, "keys bundle: %v\n", err)
		return 1
	}
	b := &identity.Bundle{Name: *name, Role: *role, PublicKey: pub, NotBefore: from, Expiry: time.Now().Add(*expiry)}
	if err := b.Sign(root); err != nil {
		fmt.Fprintf(stderr, "keys bundle: %v\n", err)
		return 1
	}
	if *force {
		_ = os.Remove(*out)
	}
	if err := identity.WriteBundleFile(*out, b); err != nil {
		fmt.Fprintf(stderr, "keys bundle: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "bundle %s: %q role %q key %s, issuer %s, valid %s … %s\n", *out, b.Name, b.Role,
		pub.KeyID(), b.Issuer, b.NotBefore.Format(time.RFC3339), b.Expiry.Format(time.RFC3339))
	return 0
}

// runKeysShow describes key and bundle files, and verifies bundles against
// -roots.
func runKeysShow(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keys show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rootList := fs.String("roots", "", "comma-separated public key files to verify bundles against")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: dsmil-host keys show [-roots ROOT.pub,...] FILE...")
		return 2
	}
	var roots []*identity.PublicKey
	if *rootList != "" {
		var err error
		if roots, err = identity.LoadPublicKeyFiles(strings.Split(*rootList, ",")...); err != nil {
			fmt.Fprintf(stderr, "keys show: %v\n", err)
			return 1
		}
	}
	code := 0
	for _, path := range fs.Args() {
		if err := showKeyFile(stdout, path, roots); err != nil {
			fmt.Fprintf(stderr, "keys show: %v\n", err)
			code = 1
		}
	}
	return code
}

func showKeyFile(w io.Writer, path string, roots []*identity.PublicKey) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	switch {
	case strings.Contains(string(data), identity.PEMPrivateKey):
		k, err := identity.LoadPrivateKeyFile(path) // checks the mode too
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s: ML-DSA-87 private key, key id %s\n", path, k.Public().KeyID())
	case strings.Contains(string(data), identity.PEMPublicKey):
		p, err := identity.ParsePublicKeyPEM(data)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		fmt.Fprintf(w, "%s: ML-DSA-87 public key, key id %s\n", path, p.KeyID())
	case strings.Contains(string(data), identity.PEMBundle):
		b, err := identity.ParseBundlePEM(data)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		fmt.Fprintf(w, "%s: identity bundle\n  name:       %s\n  role:       %s\n  key id:     %s\n  issuer:     %s\n  not before: %s\n  expiry:     %s\n",
			path, b.Name, b.Role, b.PublicKey.KeyID(), b.Issuer, b.NotBefore.Format(time.RFC3339), b.Expiry.Format(time.RFC3339))
		if roots != nil {
			if err := identity.VerifyBundle(b, roots, time.Now()); err != nil {
				fmt.Fprintf(w, "  verified:   NO\n")
				return fmt.Errorf("%s: %w", path, err)
			}
			fmt.Fprintf(w, "  verified:   yes\n")
		}
	default:
		return fmt.Errorf("%s: not a DSMIL key or bundle file", path)
	}
	return nil
}
