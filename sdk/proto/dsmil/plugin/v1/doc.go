// Package pluginv1 is the generated Go code of dsmil.plugin.v1
// (plugin.proto): the Control gRPC service that dsmil-host uses to describe,
// configure and health-check a workload plugin. Plugin authors use it through
// package github.com/dsmil/l7/sdk rather than directly.
//
// Regenerate with `go generate ./sdk/proto/...` after editing plugin.proto.
package pluginv1
