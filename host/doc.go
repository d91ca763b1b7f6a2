// Package host is the root of the dsmil-host process: config, router,
// policy, shim, pluginmgr and cli live in its subpackages.
package host
