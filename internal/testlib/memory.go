package testlib

import (
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Memory figures for benchmarks: what a piece of code holds (the live
// heap) and what it costs the process (peak RSS, garbage included).

// LiveHeap is the heap still reachable, measured after a collection.
func LiveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// ResetPeakRSS resets the process's peak RSS to its current RSS (Linux:
// clear_refs 5) and returns it, or 0 where that cannot be done. Call
// debug.FreeOSMemory first for a baseline without the heap's free pages.
func ResetPeakRSS() int64 {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return 0
	}
	return procStatus("VmRSS:")
}

// PeakRSS is the process's peak RSS (VmHWM) since the last ResetPeakRSS.
func PeakRSS() int64 { return procStatus("VmHWM:") }

// procStatus reads a size in kB from /proc/self/status, in bytes.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
