// Package sdk is what a DSMIL L7 plugin author imports: the Workload
// interface a plugin implements, the optional capabilities the SDK discovers
// by type assertion (Chatter, Embedder, StatusReporter, Closer), and Serve, which
// makes a plugin's main one call:
//
//	func main() { sdk.Serve(&sdk.ServeConfig{Workload: echo.New()}) }
//
// dsmil-host starts every plugin with hashicorp/go-plugin. Every byte on the
// plugin's socket is a DBE frame (docs/dbe.md): the session is authenticated
// with the per-process key the host passes in DSMIL_PLUGIN_KEY, go-plugin's
// gRPC connection runs inside TUNNEL_DATA frames and carries only control
// (the Control service: Info, Configure, Health, Status), and the data path
// runs as DBE frames multiplexed by correlation id on the same session:
//
//	L7_CHAT_REQ → L7_CHAT_CHUNK… (stream) | L7_CHAT_RESP | ERROR
//	HEALTH      → L7_MODEL_STATUS
//	CANCEL      → the request's context is cancelled
//
// A Chatter writes generated text to a Stream; the SDK turns it into chunks
// or one response, fills in ids, usage, latency, device and profile, counts
// requests in flight and tokens generated, and maps errors to DBE codes
// (AsError): return Errorf, InvalidParam or Overloaded for a specific code.
//
// For the host side, GRPCPlugin dispenses a *ControlClient; Handshake,
// PluginName and EnvHostName are names both sides agree on. Server is
// the plugin side without the process around it, for in-process tests; the
// sdktest package checks a Workload against all of the above.
package sdk
