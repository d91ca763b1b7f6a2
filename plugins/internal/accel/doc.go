// Package accel chooses where a plugin's ONNX Runtime sessions compute: on
// an NPU through one of ONNX Runtime's execution providers, when both the
// provider (built into the loaded ONNX Runtime: ort.AvailableProviders) and
// its device (a device node of the right driver: Devices) are there, or
// else on the CPU execution provider.
//
// Select is a pure function of what ONNX Runtime reports, what devices were
// found and the plugin's settings, so every case is tested without an NPU.
// It never answers an NPU that is not both built in and present: a
// fallback to the CPU carries the reason, for the plugin's one start-up
// warning, and Require turns the fallback into ErrNoAccelerator.
package accel
