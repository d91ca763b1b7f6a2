package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dsmil/l7/host/admin"
	"github.com/dsmil/l7/host/server"
	"github.com/hashicorp/go-hclog"
)

func newLogger(stderr io.Writer, level string, jsonFmt bool) hclog.Logger {
	if level == "" {
		level = os.Getenv("DSMIL_LOG_LEVEL")
	}
	if level == "" {
		level = "info"
	}
	return hclog.New(&hclog.LoggerOptions{
		Name: "dsmil-host", Level: hclog.LevelFromString(level), Output: stderr,
		JSONFormat: jsonFmt, TimeFormat: time.RFC3339Nano,
	})
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "dsmil.hcl", "configuration file")
	level := fs.String("log-level", "", "trace, debug, info, warn or error (default $DSMIL_LOG_LEVEL or info)")
	jsonLogs := fs.Bool("log-json", false, "log JSON lines")
	drain := fs.Duration("drain-timeout", 30*time.Second, "how long shutdown waits for in-flight requests")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := loadConfig(*path, stderr)
	if cfg == nil {
		return 1
	}
	log := newLogger(stderr, *level, *jsonLogs)
	server.TuneGC()
	h, err := server.Start(ctx, cfg, log, server.Options{ConfigPath: *path, Version: Version, DrainTimeout: *drain})
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	<-ctx.Done()
	if err := h.Shutdown(); err != nil {
		log.Warn("shutdown", "error", err)
	}
	return 0
}

func runPluginsList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plugins list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "dsmil.hcl", "configuration file naming the admin socket")
	sock := fs.String("admin", "", "admin socket path (overrides -config)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *sock == "" {
		cfg := loadConfig(*path, io.Discard)
		if cfg == nil {
			fmt.Fprintf(stderr, "plugins list: cannot read %s to find the admin socket; pass -admin PATH\n", *path)
			return 1
		}
		*sock = cfg.Admin.Socket
	}
	snaps, err := admin.NewClient(*sock).Plugins(ctx)
	if err != nil {
		if errors.Is(err, admin.ErrNoHost) {
			fmt.Fprintf(stderr, "plugins list: no dsmil-host is running (nothing listens on %s); start one with `dsmil-host serve`\n", *sock)
			return 1
		}
		fmt.Fprintf(stderr, "plugins list: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(snaps)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tNAME\tDEVICE\tPROFILES\tACCELERATOR\tVERSION\tPID\tSTATE\tHEALTH\tRESTARTS\tLOAD\tMEM\tUPTIME")
	for _, s := range snaps {
		node, name := "local", fmt.Sprintf("%s#%d", s.Name, s.Replica)
		if s.Node != "" {
			node = s.Node // an instance on a worker node (peer block)
		}
		if s.Name == "" {
			name = "-" // a worker node that has reported no instance
		}
		health := "unhealthy"
		if s.Healthy {
			health = "healthy"
		}
		pid, uptime, version, accel := "-", "-", s.Version, s.Accelerator
		if s.PID != 0 {
			pid = fmt.Sprint(s.PID)
			uptime = (time.Duration(s.UptimeSec) * time.Second).String()
		}
		if version == "" {
			version = "-"
		}
		if accel == "" {
			accel = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%.2f\t%s\t%s\n", node, name, s.DeviceID,
			strings.Join(s.Profiles, ","), accel, version, pid, s.State, health, s.Restarts, s.Load, humanBytes(s.MemoryUsed), uptime)
	}
	_ = tw.Flush()
	// What is wrong now, and why each instance's previous process ended
	// (also after it recovered): what to look at after a restart.
	var notes []string
	for _, s := range snaps {
		id := fmt.Sprintf("%s#%d", s.Name, s.Replica)
		if s.Node != "" {
			id = s.Node + "/" + id
			if s.Name == "" {
				id = s.Node
			}
		}
		if s.LastError != "" {
			notes = append(notes, fmt.Sprintf("%s: error: %s", id, s.LastError))
		}
		if s.LastExit != "" && s.LastExit != s.LastError {
			notes = append(notes, fmt.Sprintf("%s: last exit %s ago: %s", id, time.Since(s.LastExitAt).Round(time.Second), s.LastExit))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(stdout)
		for _, n := range notes {
			fmt.Fprintln(stdout, n)
		}
	}
	return 0
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
