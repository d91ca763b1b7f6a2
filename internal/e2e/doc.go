// Package e2e holds end-to-end tests that join the host's packages (plugin
// manager, router, shim) with real plugin binaries built for the test, so
// that nothing under plugins/ needs to import host/ to be tested through
// it. It has no non-test code.
package e2e
