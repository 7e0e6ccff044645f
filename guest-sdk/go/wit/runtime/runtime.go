// Package runtime is what generated bindings need from Go itself: memory the host can write
// into (the canonical ABI's `cabi_realloc`), kept alive until the Go values that alias it
// hold it, and resource handles that are dropped exactly once.
package runtime

import (
	"runtime"
	"unsafe"
)

// reallocPinner keeps what the host allocated through cabi_realloc alive until the guest
// code has taken it (an export's arguments, an import's results): Go's collector does not
// see a pointer that only the host holds.
var reallocPinner runtime.Pinner

// zeroSized is the address given for allocations of no bytes (never written through).
var zeroSized uint64

// Allocate returns `size` bytes aligned to `align` (at most 8), pinned by `pinner` until it
// is unpinned.
func Allocate(pinner *runtime.Pinner, size, align uintptr) unsafe.Pointer {
	if align > 8 {
		panic("wit runtime: alignment over 8 bytes")
	}
	if size == 0 {
		return unsafe.Pointer(&zeroSized)
	}
	// A []uint64 is 8-byte aligned, which covers every alignment the ABI uses.
	words := make([]uint64, (size+7)/8)
	pointer := unsafe.Pointer(&words[0])
	pinner.Pin(pointer)
	return pointer
}

// Unpin releases what cabi_realloc handed out so far; the Go values built from it (strings,
// slices) keep it alive from here on.
func Unpin() {
	reallocPinner.Unpin()
}

//go:wasmexport cabi_realloc
func cabiRealloc(old unsafe.Pointer, oldSize, align, newSize uint32) unsafe.Pointer {
	pointer := Allocate(&reallocPinner, uintptr(newSize), uintptr(align))
	if old != nil && oldSize > 0 {
		copy(unsafe.Slice((*byte)(pointer), newSize), unsafe.Slice((*byte)(old), oldSize))
	}
	return pointer
}

// Handle is a resource handle that is given back to the host once: Take and TakeOrNil
// empty it, so a second drop (a Drop after a cleanup, or the other way round) is a no-op.
type Handle struct {
	value int32
}

// MakeHandle wraps a handle the host gave.
func MakeHandle(value int32) *Handle {
	return &Handle{value}
}

// Take empties the handle and returns its value; it panics if it was already taken.
func (h *Handle) Take() int32 {
	value := h.Use()
	h.value = 0
	return value
}

// TakeOrNil empties the handle and returns its value, or 0 if it was already taken.
func (h *Handle) TakeOrNil() int32 {
	value := h.value
	h.value = 0
	return value
}

// Use returns the handle's value without taking it; it panics if it was already taken.
func (h *Handle) Use() int32 {
	if h.value == 0 {
		panic("wit runtime: use of a resource handle that was already dropped or moved")
	}
	return h.value
}

// Set gives the handle a value.
func (h *Handle) Set(value int32) {
	h.value = value
}
