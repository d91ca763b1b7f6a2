// Package pluginmgr spawns, supervises and stops the plugins named in
// dsmil.hcl. Each replica is a go-plugin process whose gRPC control
// connection and DBE data path share one authenticated session on the
// plugin's Unix socket. Each start (spawn, handshakes, Configure, first
// health check) must finish within the plugin block's start_timeout. The
// manager health-checks every replica on an interval, restarts a dead or
// unhealthy one with exponential backoff, gives up after the configured
// number of restarts (state "failed"), drains in-flight work on shutdown,
// and re-emits plugin logs under the plugin's name. Instances satisfy
// router.Worker; the Manager is the router's Registry.
package pluginmgr
