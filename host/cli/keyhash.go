package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dsmil/l7/host/config"
)

// stdin is what commands read as standard input; tests replace it.
var stdin io.Reader = os.Stdin

// maxKeyBytes bounds the key read from stdin.
const maxKeyBytes = 4096

// runKeysHash prints the SHA-256 that a tenant's api_key_sha256 holds for
// an API key read from stdin (never from the command line, where it would
// land in shell history and ps), or generates a new key with -generate.
func runKeysHash(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keys hash", flag.ContinueOnError)
	fs.SetOutput(stderr)
	generate := fs.Bool("generate", false, "generate a random key and print it with its hash")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: dsmil-host keys hash [-generate] < KEYFILE   (the key is read from stdin, not from the command line)")
		return 2
	}
	if *generate {
		var b [32]byte
		_, _ = rand.Read(b[:])
		key := "dsmil-" + base64.RawURLEncoding.EncodeToString(b[:])
		fmt.Fprintf(stdout, "key:            %s\napi_key_sha256: %s\n", key, config.HashKey(key))
		fmt.Fprintln(stderr, "Give the key to its user now (it is not stored anywhere); put the api_key_sha256 in the tenant's block of dsmil.hcl.")
		return 0
	}
	b, err := io.ReadAll(io.LimitReader(stdin, maxKeyBytes+1))
	if err != nil {
		fmt.Fprintf(stderr, "keys hash: reading stdin: %v\n", err)
		return 1
	}
	key := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	switch {
	case len(b) > maxKeyBytes:
		fmt.Fprintf(stderr, "keys hash: the key is longer than %d bytes\n", maxKeyBytes)
		return 1
	case key == "":
		fmt.Fprintln(stderr, `keys hash: no key on stdin; try: echo "$KEY" | dsmil-host keys hash   (or -generate for a new one)`)
		return 1
	case strings.ContainsAny(key, "\r\n"):
		fmt.Fprintln(stderr, "keys hash: stdin holds more than one line; give one key")
		return 1
	case strings.TrimSpace(key) != key:
		fmt.Fprintln(stderr, "keys hash: the key starts or ends with whitespace, which an Authorization header cannot carry")
		return 1
	}
	fmt.Fprintln(stdout, config.HashKey(key))
	return 0
}
