// Package types holds WIT's `result` and `option` as Go generics, as the generated bindings
// use them.
package types

// The tags of a Result.
const (
	ResultOk  uint8 = 0
	ResultErr uint8 = 1
)

// The tags of an Option.
const (
	OptionNone uint8 = 0
	OptionSome uint8 = 1
)

// Result is a WIT `result<T, E>`.
type Result[T any, E any] struct {
	tag uint8
	ok  T
	err E
}

// Ok is a successful Result.
func Ok[T any, E any](value T) Result[T, E] {
	return Result[T, E]{tag: ResultOk, ok: value}
}

// Err is a failed Result.
func Err[T any, E any](err E) Result[T, E] {
	return Result[T, E]{tag: ResultErr, err: err}
}

// Tag is ResultOk or ResultErr.
func (r Result[T, E]) Tag() uint8 { return r.tag }

// IsOk says whether the result succeeded.
func (r Result[T, E]) IsOk() bool { return r.tag == ResultOk }

// IsErr says whether the result failed.
func (r Result[T, E]) IsErr() bool { return r.tag == ResultErr }

// Ok is the success value; it panics on a failed result.
func (r Result[T, E]) Ok() T {
	if r.tag != ResultOk {
		panic("wit types: Ok of a failed result")
	}
	return r.ok
}

// Err is the error; it panics on a successful result.
func (r Result[T, E]) Err() E {
	if r.tag != ResultErr {
		panic("wit types: Err of a successful result")
	}
	return r.err
}

// Option is a WIT `option<T>`.
type Option[T any] struct {
	tag  uint8
	some T
}

// Some is an Option holding a value.
func Some[T any](value T) Option[T] {
	return Option[T]{tag: OptionSome, some: value}
}

// None is an empty Option.
func None[T any]() Option[T] {
	return Option[T]{tag: OptionNone}
}

// Tag is OptionNone or OptionSome.
func (o Option[T]) Tag() uint8 { return o.tag }

// IsSome says whether the option holds a value.
func (o Option[T]) IsSome() bool { return o.tag == OptionSome }

// IsNone says whether the option is empty.
func (o Option[T]) IsNone() bool { return o.tag == OptionNone }

// Some is the value; it panics on an empty option.
func (o Option[T]) Some() T {
	if o.tag != OptionSome {
		panic("wit types: Some of an empty option")
	}
	return o.some
}

// SomeOr is the value, or `fallback` when empty.
func (o Option[T]) SomeOr(fallback T) T {
	if o.tag == OptionSome {
		return o.some
	}
	return fallback
}
