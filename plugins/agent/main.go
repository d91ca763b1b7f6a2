// Command dsmil-agent is the agent plugin (Device 48): a constrained
// tool-using harness whose every LLM step goes through the host's router.
// dsmil-host starts it; see README.md.
package main

import (
	"github.com/dsmil/l7/plugins/agent/internal/agent"
	"github.com/dsmil/l7/sdk"
)

func main() { sdk.Serve(&sdk.ServeConfig{Workload: agent.New()}) }
