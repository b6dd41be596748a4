package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// jsonOptions: camelCase names as grpcurl and AIP JSON use; scalar fields
// at their default (priority 0, metered false) are printed so that scripts
// need not guess.
var jsonOptions = protojson.MarshalOptions{EmitDefaultValues: true}

// compactJSON marshals m on one line. protojson's spacing is deliberately
// unstable; re-compacting makes the output byte-stable.
func compactJSON(m proto.Message) ([]byte, error) {
	raw, err := jsonOptions.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return buf.Bytes(), nil
}

// writeJSON prints m as one indented JSON object.
func writeJSON(w io.Writer, m proto.Message) error {
	c, err := compactJSON(m)
	if err != nil {
		return err
	}
	return writeIndented(w, c)
}

// writeJSONArray prints ms as one indented JSON array ([] when empty).
func writeJSONArray[M proto.Message](w io.Writer, ms []M) error {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, m := range ms {
		c, err := compactJSON(m)
		if err != nil {
			return err
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(c)
	}
	buf.WriteByte(']')
	return writeIndented(w, buf.Bytes())
}

// writeJSONLine prints m as one line of JSON (JSON lines, for streams).
func writeJSONLine(w io.Writer, m proto.Message) error {
	c, err := compactJSON(m)
	if err != nil {
		return err
	}
	_, err = w.Write(append(c, '\n'))
	return err
}

func writeIndented(w io.Writer, compact []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, compact, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// table writes aligned columns; cells that are empty print as "-".
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// yesNo renders a boolean cell.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// timeFormat is RFC 3339 in UTC with milliseconds, fixed width.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// formatTime renders a timestamp, "-" when unset.
func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().UTC().Format(timeFormat)
}

// lastSegment returns the id part of a resource name.
func lastSegment(name string) string {
	return name[strings.LastIndexByte(name, '/')+1:]
}
