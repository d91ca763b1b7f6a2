// Command dsmil-echo is the echo plugin: a deterministic chat workload that
// answers with the last user message behind a prefix. dsmil-host starts it;
// see README.md.
package main

import (
	"github.com/dsmil/l7/plugins/echo/internal/echo"
	"github.com/dsmil/l7/sdk"
)

func main() { sdk.Serve(&sdk.ServeConfig{Workload: echo.New()}) }
