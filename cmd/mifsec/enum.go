package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// protoEnum is a generated proto enum type.
type protoEnum interface {
	~int32
	protoreflect.Enum
}

// enumPrefix is the common prefix of an enum's value names, taken from its
// zero value (buf STANDARD: `ACCESS_TYPE_UNSPECIFIED` gives `ACCESS_TYPE_`).
func enumPrefix(d protoreflect.EnumDescriptor) string {
	zero := d.Values().ByNumber(0)
	if zero == nil {
		return ""
	}
	return strings.TrimSuffix(string(zero.Name()), "UNSPECIFIED")
}

// enumShort returns the short lower-case name of e for display
// (ACCESS_TYPE_WLAN → "wlan"), or its number for values this build does not
// know.
func enumShort(e protoreflect.Enum) string {
	d := e.Descriptor()
	v := d.Values().ByNumber(e.Number())
	if v == nil {
		return fmt.Sprintf("%d", e.Number())
	}
	return strings.ToLower(strings.TrimPrefix(string(v.Name()), enumPrefix(d)))
}

// enumChoices lists the short names a user may type (all but UNSPECIFIED).
func enumChoices(d protoreflect.EnumDescriptor) []string {
	var out []string
	vals := d.Values()
	for i := range vals.Len() {
		if v := vals.Get(i); v.Number() != 0 {
			out = append(out, strings.ToLower(strings.TrimPrefix(string(v.Name()), enumPrefix(d))))
		}
	}
	return out
}

// parseEnum accepts a short name in any case (`wlan`, `WLAN`) or the full
// proto name (`ACCESS_TYPE_WLAN`); UNSPECIFIED is refused.
func parseEnum[T protoEnum](s string) (T, error) {
	var zero T
	d := zero.Descriptor()
	up := strings.ToUpper(strings.TrimSpace(s))
	prefix := enumPrefix(d)
	v := d.Values().ByName(protoreflect.Name(prefix + up))
	if v == nil && strings.HasPrefix(up, prefix) {
		v = d.Values().ByName(protoreflect.Name(up))
	}
	if v == nil || v.Number() == 0 {
		return zero, fmt.Errorf("unknown %s %q (want one of %s)", enumNoun(d), s, strings.Join(enumChoices(d), ", "))
	}
	return T(v.Number()), nil
}

// enumNoun is the enum's name in words: AccessType → "access type".
func enumNoun(d protoreflect.EnumDescriptor) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSuffix(enumPrefix(d), "_")), "_", " ")
}

// enumFlag is a pflag.Value holding one enum value.
type enumFlag[T protoEnum] struct{ v *T }

func newEnumFlag[T protoEnum](v *T) *enumFlag[T] { return &enumFlag[T]{v} }

func (f *enumFlag[T]) String() string {
	if *f.v == 0 {
		return ""
	}
	return enumShort(*f.v)
}

func (f *enumFlag[T]) Set(s string) error {
	v, err := parseEnum[T](s)
	if err != nil {
		return err
	}
	*f.v = v
	return nil
}

func (f *enumFlag[T]) Type() string {
	var zero T
	return strings.ReplaceAll(enumNoun(zero.Descriptor()), " ", "-")
}

// enumListFlag is a pflag.Value collecting enum values from repeated flags
// or comma-separated lists.
type enumListFlag[T protoEnum] struct{ v *[]T }

func newEnumListFlag[T protoEnum](v *[]T) *enumListFlag[T] { return &enumListFlag[T]{v} }

func (f *enumListFlag[T]) String() string {
	names := make([]string, len(*f.v))
	for i, e := range *f.v {
		names[i] = enumShort(e)
	}
	return strings.Join(names, ",")
}

func (f *enumListFlag[T]) Set(s string) error {
	for part := range strings.SplitSeq(s, ",") {
		v, err := parseEnum[T](part)
		if err != nil {
			return err
		}
		*f.v = append(*f.v, v)
	}
	return nil
}

func (f *enumListFlag[T]) Type() string {
	var zero T
	return strings.ReplaceAll(enumNoun(zero.Descriptor()), " ", "-")
}

// enumFlagCompletion completes a flag with the enum's short names.
func enumFlagCompletion[T protoEnum]() cobra.CompletionFunc {
	var zero T
	return cobra.FixedCompletions(enumChoices(zero.Descriptor()), cobra.ShellCompDirectiveNoFileComp)
}
