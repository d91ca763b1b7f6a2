// Package server wires the host together for `dsmil-host serve`: the plugin
// manager, the router and its Unix-socket endpoint, and the admin socket;
// it starts them in order and shuts them down in reverse, draining
// in-flight requests.
package server
