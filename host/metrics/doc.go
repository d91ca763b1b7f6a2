// Package metrics exposes the plane's Prometheus metrics (spec §5.5):
//
//	dsmil_l7_requests_total{device_id, profile, status}   counter
//	dsmil_l7_latency_seconds{device_id, profile}           histogram
//	dsmil_l7_tokens_generated_total{device_id}             counter
//	dsmil_l7_memory_used_bytes{device_id}                  gauge
//
// plus dsmil_l7_prompt_tokens_total{device_id}, dsmil_l7_in_flight,
// dsmil_l7_plugin_up{plugin, replica, device_id, accelerator} and
// dsmil_l7_plugin_restarts_total{plugin, replica}. Request metrics come from
// the router (Metrics implements router.Observer); plugin metrics are read
// from the plugin manager at scrape time.
package metrics
