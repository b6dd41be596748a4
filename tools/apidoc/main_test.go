package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

// image writes a FileDescriptorSet of the generated mifsec files and their
// imports, as buf build would (without source info: no comments).
func image(t *testing.T) string {
	t.Helper()
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		for i := 0; i < fd.Imports().Len(); i++ {
			add(fd.Imports().Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	for _, fd := range []protoreflect.FileDescriptor{mifsecv1.File_mifsec_v1_connection_proto, mifsecv1.File_mifsec_v1_event_proto,
		mifsecv1.File_mifsec_v1_interface_proto, mifsecv1.File_mifsec_v1_pool_proto, mifsecv1.File_mifsec_v1_sa_proto,
		mifsecv1.File_mifsec_v1_secret_proto} {
		add(fd)
	}
	b, err := proto.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "api.binpb")
	os.WriteFile(p, b, 0o644)
	return p
}

func TestEveryServiceMethodMessageEnum(t *testing.T) {
	doc, err := generate(image(t), "mifsec.")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	n := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("mifsec.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			s := fd.Services().Get(i)
			if !strings.Contains(text, "### "+string(s.FullName())+"\n") {
				t.Errorf("no section for %s", s.FullName())
			}
			for j := 0; j < s.Methods().Len(); j++ {
				n++
				if !strings.Contains(text, "| "+string(s.Methods().Get(j).Name())+" |") {
					t.Errorf("no row for %s", s.Methods().Get(j).FullName())
				}
			}
		}
		for i := 0; i < fd.Messages().Len(); i++ {
			if !strings.Contains(text, "### "+string(fd.Messages().Get(i).FullName())+"\n") {
				t.Errorf("no section for %s", fd.Messages().Get(i).FullName())
			}
		}
		for i := 0; i < fd.Enums().Len(); i++ {
			e := fd.Enums().Get(i)
			if !strings.Contains(text, "### "+string(e.FullName())+"\n") || !strings.Contains(text, "`"+string(e.Values().Get(0).Name())+"`") {
				t.Errorf("no section for %s", e.FullName())
			}
		}
		return true
	})
	if n < 30 {
		t.Errorf("only %d methods seen", n)
	}
	if strings.Contains(text, "google.protobuf.Timestamp\n") {
		t.Error("imported packages documented")
	}
	again, _ := generate(image(t), "mifsec.")
	if string(again) != text {
		t.Error("output is not deterministic")
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte{0xff, 0xff, 0xff}, 0o644)
	for _, p := range []string{filepath.Join(dir, "absent"), junk} {
		if _, err := generate(p, "mifsec."); err == nil {
			t.Errorf("%s: no error", p)
		}
	}
	if _, err := generate(image(t), "nosuch."); err == nil || !strings.Contains(err.Error(), "no file of package") {
		t.Errorf("unknown package: %v", err)
	}
}
