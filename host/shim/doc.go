// Package shim is the OpenAI-compatible HTTP API of dsmil-host, on
// 127.0.0.1:8001 by default: GET /v1/models, GET /v1/models/{id},
// POST /v1/chat/completions, POST /v1/completions (streamed or not),
// GET /healthz and GET /readyz.
//
// The shim is a dumb adapter. It authenticates the caller (a Bearer key
// whose SHA-256 matches a tenant of dsmil.hcl), validates the OpenAI JSON,
// turns it into a DBE L7_CHAT_REQ whose TLVs come from the tenant and the
// model's profile, hands the frame to the router and turns the reply back
// into OpenAI JSON or server-sent events. Policy, claim tokens and quotas
// are the router's: the shim only maps the DBE error codes to HTTP
// statuses, in one place (errors.go, docs/dbe.md §6).
//
// Files: shim.go (Server, lifecycle, routing), middleware.go (request id,
// Host allowlist, CORS, authentication), translate_request.go (OpenAI JSON
// → validated L7ChatRequest → DBE frame), translate_response.go (DBE reply
// → OpenAI JSON), sse.go (streaming), handlers.go (endpoints, and the reply
// that takes the router's frames from its callback, router.Router.Forward,
// to the request's goroutine), errors.go (error bodies and the DBE → HTTP
// mapping). docs/clients.md is the user's guide.
package shim
