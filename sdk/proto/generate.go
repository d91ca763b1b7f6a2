// Package proto is the home of the protobuf schemas of DSMIL L7: the payloads
// of the DBE message types (dsmil/l7/v1/l7.proto, Go package l7v1) and the
// plugin control service (dsmil/plugin/v1/plugin.proto, Go package
// pluginv1). It holds no code of its own.
//
// Regenerate the Go code after editing a .proto file, from the repository
// root:
//
//	go generate ./sdk/proto/...
//
// and check that the committed code is up to date (as make test does) with:
//
//	sh sdk/proto/generate.sh -check
//
// Both need protoc (apt-get install protobuf-compiler) in PATH; the protoc
// plugins are built from the versions pinned in go.mod.
package proto

//go:generate sh generate.sh
