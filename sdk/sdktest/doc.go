// Package sdktest is the conformance harness for DSMIL L7 plugins. Run
// checks a Workload through the real SDK data path and Control service over
// a real Unix socket with the post-quantum session handshake and sealed
// frames that dsmil-host uses, in process:
//
//	func TestConformance(t *testing.T) {
//		sdktest.Run(t, echo.New(), &sdk.Config{Name: "echo", DeviceID: 47, Profiles: []string{"echo"}})
//	}
//
// Pair and Connect give tests (the plugin's own, and the host's) the same
// connection without the checks: a *mux.Client for the data path and a
// *sdk.ControlClient for control. ChatFrame and Call build and send chat
// requests.
package sdktest
