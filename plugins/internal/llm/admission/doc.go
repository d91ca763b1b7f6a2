// Package admission decides when a generation may start: at most a fixed
// number run at once (parallelism), and the KV cache memory they reserve
// stays within a budget. Requests that cannot start wait in a bounded FIFO
// queue; a request that finds the queue full is refused at once, as is one
// that could never fit the budget.
//
// The queue is strictly first come, first served: a small request never
// overtakes a large one waiting for memory, so large requests cannot
// starve.
package admission
