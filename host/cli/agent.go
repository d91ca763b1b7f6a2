package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/host/server"
	"github.com/dsmil/l7/sdk/client"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

const agentRunUsage = "agent run [-config FILE] [-tenant T] [-param K=V]... [-timeout S] [-claim-key KEY] [-identity-key KEY -identity-bundle BUNDLE [-roots PUB,...] [-host-name NAME]] [-json] TASK_TYPE"

// params collects repeated -param K=V flags.
type params map[string]string

func (p params) String() string { return fmt.Sprint(map[string]string(p)) }

func (p params) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want K=V, got %q", s)
	}
	if _, dup := p[k]; dup {
		return fmt.Errorf("parameter %q given twice", k)
	}
	p[k] = v
	return nil
}

// runAgentRun runs one agent task on the running host, through its router
// socket (router.socket of -config), as a tenant of the configuration:
// a line per step as it ends, then the result. Ctrl-C cancels the task,
// which still prints what it had (status cancelled). Exit status 0 when the
// task completed, 1 otherwise.
func runAgentRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "dsmil.hcl", "configuration file naming the router socket and the tenants")
	sock := fs.String("socket", "", "router socket path (overrides -config)")
	tenantName := fs.String("tenant", "", "tenant of the task (default: the configuration's only tenant); its compartments, classification and ROE are sent")
	profile := fs.String("profile", "agent", "the agent plugin's profile")
	timeout := fs.Int("timeout", 0, "timeout_seconds of the task (0: the task type's wall_time, within router.agent_timeout)")
	claimKey := fs.String("claim-key", "", "ML-DSA-87 private key of a claim issuer for the tenant, to mint the task's claim token")
	asJSON := fs.Bool("json", false, "print the final L7AgentResult as JSON instead of the summary")
	idKey := fs.String("identity-key", "", "the client's ML-DSA-87 private key, for the DSMIL-PQ1 handshake on the router socket of a host with a security block")
	idBundle := fs.String("identity-bundle", "", "the client's identity bundle (role client, signed by a root the host trusts)")
	rootsFlag := fs.String("roots", "", "comma-separated root public keys the host's bundle must be signed by (default: the configuration's security.roots)")
	hostName := fs.String("host-name", "", "the name the host's bundle must carry (default: any host)")
	ps := params{}
	fs.Var(ps, "param", "task parameter K=V (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: dsmil-host "+agentRunUsage)
		return 2
	}
	if *timeout < 0 {
		fmt.Fprintln(stderr, "agent run: -timeout must be ≥ 0")
		return 2
	}
	cfg, diags := config.Load(*path)
	if diags.HasErrors() {
		_ = config.WriteDiagnostics(stderr, cfg.Files(), diags)
		return 1
	}
	t, err := pickTenant(cfg, *tenantName)
	if err != nil {
		fmt.Fprintf(stderr, "agent run: %v\n", err)
		return 1
	}
	if *sock == "" {
		*sock = cfg.Router.Socket
	}
	var opts client.Options
	switch {
	case (*idKey == "") != (*idBundle == ""):
		fmt.Fprintln(stderr, "agent run: -identity-key and -identity-bundle go together")
		return 2
	case *idKey != "":
		if opts, err = clientIdentity(*idKey, *idBundle, *rootsFlag, *hostName, cfg); err != nil {
			fmt.Fprintf(stderr, "agent run: %v\n", err)
			return 1
		}
	case cfg.Security.Configured:
		fmt.Fprintln(stderr, "agent run: this host has a security block: its router socket runs the DSMIL-PQ1 handshake; give the client identity with -identity-key and -identity-bundle (docs/clients.md)")
		return 1
	}

	task := &l7v1.L7AgentTask{TaskType: fs.Arg(0), Parameters: ps, TimeoutSeconds: int32(*timeout)}
	f := &dbe.Frame{Type: dbe.MsgAgentTask}
	f.SetTenantID(t.Name)
	f.SetCompartmentMask(t.CompartmentMask())
	f.SetClassification(t.Classification)
	f.SetROELevel(t.ROE)
	f.SetProfile(*profile)
	f.SetTimestamp(time.Now())
	var id [16]byte
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	f.SetRequestID(id)
	if *timeout > 0 {
		f.SetTimeout(time.Duration(*timeout) * time.Second)
	}
	if *claimKey != "" {
		key, err := identity.LoadPrivateKeyFile(*claimKey)
		if err != nil {
			fmt.Fprintf(stderr, "agent run: %v\n", err)
			return 1
		}
		m, err := identity.NewMinter(identity.MinterConfig{Key: key, Audience: server.ClaimAudience})
		if err != nil {
			fmt.Fprintf(stderr, "agent run: %v\n", err)
			return 1
		}
		tok, err := m.Token(t.Name, "dsmil-host-cli", []string{t.ROE.String()})
		if err != nil {
			fmt.Fprintf(stderr, "agent run: minting the claim token: %v\n", err)
			return 1
		}
		f.SetClaimToken(tok)
	}
	f.Payload, err = proto.Marshal(task)
	if err != nil {
		fmt.Fprintf(stderr, "agent run: %v\n", err)
		return 1
	}

	c, err := client.Dial(ctx, *sock, opts)
	if err != nil {
		fmt.Fprintf(stderr, "agent run: is dsmil-host running? %v\n", err)
		return 1
	}
	defer c.Close()
	st := c.Start(f, 0)
	fmt.Fprintf(stderr, "task %s (%s) as %s\n", dbe.FormatUUID(id), task.TaskType, t.Name)

	// Ctrl-C: CANCEL, then the task's partial result.
	sig, stopSig := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stopSig()
	go func() {
		select {
		case <-sig.Done():
			st.Stop()
		case <-ctx.Done():
			st.Stop()
		}
	}()
	for {
		fr, err := st.Next(context.Background())
		if errors.Is(err, io.EOF) {
			fmt.Fprintln(stderr, "agent run: the task ended without a result")
			return 1
		}
		if err != nil {
			fmt.Fprintf(stderr, "agent run: %v\n", err)
			return 1
		}
		var res l7v1.L7AgentResult
		if fr.Type != dbe.MsgAgentResult || proto.Unmarshal(fr.Payload, &res) != nil {
			fmt.Fprintf(stderr, "agent run: unexpected %s frame\n", fr.Type)
			return 1
		}
		if fr.Flags&dbe.FlagEndStream == 0 {
			printStep(stderr, res.GetStep())
			continue
		}
		status := router.AgentStatus(&res, dbe.CodeUnspecified)
		if *asJSON {
			b, _ := protojson.MarshalOptions{UseProtoNames: true, Multiline: true}.Marshal(&res)
			fmt.Fprintln(stdout, string(b))
		} else {
			fmt.Fprintf(stdout, "status: %s\n", status)
			if res.GetErrorMessage() != "" {
				fmt.Fprintf(stdout, "error: %s: %s\n", dbe.Code(res.GetErrorCode()), res.GetErrorMessage())
			}
			fmt.Fprintf(stdout, "steps: %d, tokens: %d\n", len(res.GetSteps()), res.GetUsage().GetTotalTokens())
			for _, a := range res.GetArtifacts() {
				fmt.Fprintf(stdout, "artifact: %s\n", a)
			}
			if res.GetResult() != "" {
				fmt.Fprintf(stdout, "\n%s\n", res.GetResult())
			}
		}
		if status != "completed" {
			return 1
		}
		return 0
	}
}

// clientIdentity loads the client identity of a DSMIL-PQ1 session on the
// router socket: the key and bundle, and the roots (a comma-separated list
// of public key files; empty: the configuration's security.roots) the
// host's bundle must be signed by.
func clientIdentity(key, bundle, roots, hostName string, cfg *config.Config) (client.Options, error) {
	id, err := identity.LoadIdentity(key, bundle)
	if err != nil {
		return client.Options{}, fmt.Errorf("the client identity: %w", err)
	}
	var files []string
	for _, f := range strings.Split(roots, ",") {
		if f = strings.TrimSpace(f); f != "" {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		files = cfg.Security.Roots
	}
	if len(files) == 0 {
		return client.Options{}, errors.New("no roots: give -roots (the configuration has no security.roots)")
	}
	pubs, err := identity.LoadPublicKeyFiles(files...)
	if err != nil {
		return client.Options{}, fmt.Errorf("the roots: %w", err)
	}
	return client.Options{Identity: id, Roots: pubs, HostName: hostName}, nil
}

func printStep(w io.Writer, s *l7v1.AgentStep) {
	var calls []string
	for _, c := range s.GetCalls() {
		calls = append(calls, fmt.Sprintf("%s(%d B) %s", c.GetTool(), c.GetArgumentBytes(), c.GetOutcome()))
	}
	if len(calls) == 0 {
		calls = append(calls, "no tool call")
	}
	ended := ""
	if s.GetEnded() != "" {
		ended = " — " + s.GetEnded()
	}
	fmt.Fprintf(w, "step %d: %s (llm %.0f ms, %d+%d tokens)%s\n", s.GetIndex(), strings.Join(calls, ", "),
		s.GetLlmMs(), s.GetPromptTokens(), s.GetCompletionTokens(), ended)
}

// pickTenant is the tenant called name, or the only one when name is "".
func pickTenant(cfg *config.Config, name string) (*config.Tenant, error) {
	var names []string
	for _, t := range cfg.Tenants {
		if t.Name == name || (name == "" && len(cfg.Tenants) == 1) {
			return t, nil
		}
		names = append(names, t.Name)
	}
	sort.Strings(names)
	if name == "" {
		return nil, fmt.Errorf("-tenant is required: the configuration has tenants %s", strings.Join(names, ", "))
	}
	return nil, fmt.Errorf("no tenant %q in the configuration (tenants: %s)", name, strings.Join(names, ", "))
}
