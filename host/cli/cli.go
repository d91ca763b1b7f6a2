package cli

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"sort"
	"strings"
)

// Version is the dsmil-host version; release builds set it with
// -ldflags "-X github.com/dsmil/l7/host/cli.Version=…".
var Version = "0.1.0-dev"

// command is one subcommand.
type command struct {
	usage string
	help  string
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"version":         {"version", "print the version", runVersion},
		"serve":           {"serve [-config FILE]", "run the host: plugins, router, admin socket", runServe},
		"plugins list":    {"plugins list [-config FILE] [-json]", "list the running host's plugin instances", runPluginsList},
		"config validate": {"config validate [-config FILE]", "parse and check a dsmil.hcl", runConfigValidate},
		"dbe decode":      {"dbe decode [HEX|-]", "decode one DBE frame given as hex (argument or stdin) and print it", runDBEDecode},
		"keys hash":       {"keys hash [-generate] < KEY", "print the api_key_sha256 of an API key read from stdin (or of a new one)", runKeysHash},
		"keys gen":        {"keys gen -out DIR -name NAME", "write an ML-DSA-87 key pair: NAME.key (mode 0600) and NAME.pub", runKeysGen},
		"keys bundle":     {"keys bundle -root KEY -name N -role R -pub PUB -out FILE", "sign an identity bundle with an operator root key", runKeysBundle},
		"keys install":    {"keys install -from DIR -to DIR", "copy key files (a Secret volume) as this user's own, mode 0400", runKeysInstall},
		"keys show":       {"keys show [-roots PUB,...] FILE...", "describe key and bundle files; verify bundles against roots", runKeysShow},
		"agent run":       {agentRunUsage, "run an agent task on the running host (router socket); Ctrl-C cancels it", runAgentRun},
		"policy test":     {policyTestUsage, "decide one request, print the rule trail (exit 0 allow, 1 deny)", runPolicyTest},
	}
}

// Run runs the command line args and returns the process exit code:
// 0 success, 1 failure, 2 usage error.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	for n := 2; n >= 1; n-- {
		if len(args) >= n {
			if c, ok := cmds[strings.Join(args[:n], " ")]; ok {
				return c.run(ctx, args[n:], stdout, stderr)
			}
		}
	}
	if len(args) > 0 && args[0] != "help" && args[0] != "-h" && args[0] != "--help" {
		fmt.Fprintf(stderr, "dsmil-host: unknown command %q\n\n", strings.Join(args, " "))
		usage(stderr, cmds)
		return 2
	}
	usage(stdout, cmds)
	return 0
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "Usage: dsmil-host COMMAND [ARGS]")
	fmt.Fprintln(w, "\nCommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-34s %s\n", cmds[n].usage, cmds[n].help)
	}
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		fmt.Fprintf(stdout, "dsmil-host %s %s\n", v, bi.GoVersion)
		return 0
	}
	fmt.Fprintf(stdout, "dsmil-host %s\n", v)
	return 0
}
