package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	mifsecv1 "github.com/mifsec/mifsec/gen/mifsec/v1"
)

func TestSecretBytesRedacted(t *testing.T) {
	s := secretBytes("hunter2")
	wrapped := struct{ V secretBytes }{s}
	for _, got := range []string{
		fmt.Sprint(s), fmt.Sprintf("%s", s), fmt.Sprintf("%v", s), fmt.Sprintf("%x", s),
		fmt.Sprintf("%q", s), fmt.Sprintf("%#v", s), fmt.Sprintf("%+v", wrapped), fmt.Sprintf("%#v", wrapped),
	} {
		if strings.Contains(got, "hunter2") || strings.Contains(got, "68756e") || !strings.Contains(got, redacted) {
			t.Errorf("leaks or lacks %s: %q", redacted, got)
		}
	}
	s.wipe()
	if !bytes.Equal(s, make([]byte, 7)) {
		t.Errorf("not wiped: %v", []byte(s))
	}
}

// writeTemp writes content to a fresh file and returns its path.
func writeTemp(t *testing.T, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadSecret(t *testing.T) {
	binary := []byte{0, 1, 2, '\n'}
	file := writeTemp(t, "psk", binary)
	empty := writeTemp(t, "empty", nil)
	big := writeTemp(t, "big", bytes.Repeat([]byte{'a'}, maxInputFile+1))
	tests := []struct {
		name    string
		v       secretFlags
		stdin   string
		want    []byte
		wantErr string
	}{
		{"file byte for byte", secretFlags{fromFile: file}, "", binary, ""},
		{"file from stdin", secretFlags{fromFile: "-"}, "abc\n", []byte("abc\n"), ""},
		{"stdin line", secretFlags{valueStdin: true}, "correct horse\n", []byte("correct horse"), ""},
		{"stdin crlf", secretFlags{valueStdin: true}, "pw\r\n", []byte("pw"), ""},
		{"stdin without newline", secretFlags{valueStdin: true}, "pw", []byte("pw"), ""},
		{"stdin keeps inner newlines", secretFlags{valueStdin: true}, "a\nb\n\n", []byte("a\nb\n"), ""},
		{"empty stdin", secretFlags{valueStdin: true}, "\n", nil, "the secret value is empty"},
		{"empty file", secretFlags{fromFile: empty}, "", nil, "the secret value is empty"},
		{"missing file", secretFlags{fromFile: filepath.Join(t.TempDir(), "none")}, "", nil, "no such file"},
		{"too large", secretFlags{fromFile: big}, "", nil, "larger than 1048576 bytes"},
		{"no source", secretFlags{}, "", nil, "--from-file FILE or --value-stdin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.v.readSecret(context.Background(), strings.NewReader(tt.stdin), &bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, %v; want error %q", []byte(got), err, tt.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Errorf("got %q, %v; want %q", []byte(got), err, tt.want)
			}
		})
	}
}

func TestBuildSecretRequest(t *testing.T) {
	req, err := buildSecretRequest("secrets/home-psk", mifsecv1.SecretType_SECRET_TYPE_PSK, secretBytes("k"))
	want := &mifsecv1.CreateSecretRequest{SecretId: "home-psk", Secret: &mifsecv1.Secret{
		Type: mifsecv1.SecretType_SECRET_TYPE_PSK, Data: &mifsecv1.Secret_Value{Value: []byte("k")}}}
	if err != nil || !proto.Equal(req, want) {
		t.Errorf("got %v, %v", req, err)
	}
	if _, err := buildSecretRequest("pools/x", mifsecv1.SecretType_SECRET_TYPE_PSK, secretBytes("k")); exitCode(err) != exitUsage {
		t.Errorf("other collection: %v", err)
	}
}

func TestSecretTypeFlag(t *testing.T) {
	tests := []struct {
		in      string
		want    mifsecv1.SecretType
		wantErr string
	}{
		{"psk", mifsecv1.SecretType_SECRET_TYPE_PSK, ""},
		{"private-key", mifsecv1.SecretType_SECRET_TYPE_PRIVATE_KEY, ""},
		{"PRIVATE_KEY", mifsecv1.SecretType_SECRET_TYPE_PRIVATE_KEY, ""},
		{"SECRET_TYPE_PSK", mifsecv1.SecretType_SECRET_TYPE_PSK, ""},
		{"key", 0, `unknown secret type "key" (want one of psk, private-key)`},
	}
	for _, tt := range tests {
		var got mifsecv1.SecretType
		f := newKebabEnumFlag(&got)
		err := f.Set(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("%q: got %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want || f.String() != kebab(enumShort(tt.want)) {
			t.Errorf("%q: got %v (%q), %v", tt.in, got, f.String(), err)
		}
	}
}

// withStdin makes os.Stdin read content for the rest of the test (the CLI
// reads cmd.InOrStdin(), which is os.Stdin).
func withStdin(t *testing.T, content string) {
	t.Helper()
	f, err := os.Open(writeTemp(t, "stdin", []byte(content)))
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = f
	t.Cleanup(func() { os.Stdin = old; f.Close() })
}

func TestCLISecret(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeDaemon()
	sock := startFake(t, f)

	withStdin(t, "correct horse battery\n")
	r := runCLI(t, ctx, sock, "secret", "add", "home-psk", "--type", "psk", "--value-stdin")
	want := "NAME      TYPE  DESCRIPTION  USED_BY  CREATED\n" +
		"home-psk  psk   21 bytes     -        2026-11-27T05:45:00.123Z\n"
	if r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Fatalf("add: %+v\nwant\n%s", r, want)
	}
	wantReq := &mifsecv1.CreateSecretRequest{SecretId: "home-psk", Secret: &mifsecv1.Secret{
		Type: mifsecv1.SecretType_SECRET_TYPE_PSK, Data: &mifsecv1.Secret_Value{Value: []byte("correct horse battery")}}}
	if got := f.lastRequest(); !proto.Equal(got, wantReq) {
		t.Errorf("daemon got %v", got)
	}

	key := writeTemp(t, "k.pem", []byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"))
	r = runCLI(t, ctx, sock, "secret", "create", "secrets/ue-key", "--type=private-key", "--from-file", key, "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"type": "SECRET_TYPE_PRIVATE_KEY"`) || strings.Contains(r.stdout, "BEGIN") {
		t.Fatalf("add --json: %+v", r)
	}

	r = runCLI(t, ctx, sock, "secret", "ls")
	if r.code != 0 || !strings.Contains(r.stdout, "home-psk  psk ") || !strings.Contains(r.stdout, "ue-key    private-key") {
		t.Errorf("list: %+v", r)
	}
	r = runCLI(t, ctx, sock, "secret", "get", "ue-key")
	if r.code != 0 || !strings.HasPrefix(strings.Split(r.stdout, "\n")[1], "ue-key  private-key  ") {
		t.Errorf("get: %+v", r)
	}

	f.mu.Lock()
	f.secrets["secrets/home-psk"].UsedBy = []string{"connections/home"}
	f.mu.Unlock()
	r = runCLI(t, ctx, sock, "secret", "get", "home-psk")
	if r.code != 0 || !strings.Contains(r.stdout, " home ") {
		t.Errorf("get used_by: %+v", r)
	}
	r = runCLI(t, ctx, sock, "secret", "delete", "home-psk")
	if r.code != exitInvalid || !strings.HasPrefix(r.stderr, "error: FAILED_PRECONDITION: secret \"secrets/home-psk\" is used by connections/home") {
		t.Errorf("delete in use: %+v", r)
	}
	r = runCLI(t, ctx, sock, "secret", "rm", "ue-key")
	if r.code != 0 || r.stdout != "deleted secrets/ue-key\n" {
		t.Errorf("delete: %+v", r)
	}
}

func TestCLISecretUsage(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeDaemon()
	sock := startFake(t, f)
	file := writeTemp(t, "psk", []byte("x"))
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no value source", []string{"secret", "add", "a", "--type", "psk"},
			"error: at least one of the flags in the group [from-file value-stdin] is required"},
		{"two sources", []string{"secret", "add", "a", "--type", "psk", "--from-file", file, "--value-stdin"},
			"error: if any flags in the group [from-file value-stdin] are set none of the others can be"},
		{"value as a flag", []string{"secret", "add", "a", "--type", "psk", "--value", "hunter2"}, "error: unknown flag: --value"},
		{"no type", []string{"secret", "add", "a", "--from-file", file}, `error: required flag(s) "type" not set`},
		{"bad type", []string{"secret", "add", "a", "--type", "rsa", "--from-file", file}, `error: invalid argument "rsa" for "--type" flag: unknown secret type`},
		{"empty value", []string{"secret", "add", "a", "--type", "psk", "--from-file", writeTemp(t, "e", nil)}, "error: the secret value is empty"},
		{"bad name", []string{"secret", "add", "pools/a", "--type", "psk", "--from-file", file}, "error: bad secret name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, ctx, sock, tt.args...)
			if r.code != exitUsage || !strings.HasPrefix(r.stderr, tt.stderr) || strings.Contains(r.stderr, "hunter2") {
				t.Errorf("got %+v, want usage error %q", r, tt.stderr)
			}
		})
	}
	if n := f.requestCount(); n != 0 {
		t.Errorf("%d requests reached the daemon", n)
	}
}

// TestSecretFlagsRegister checks the command's flag set: no flag takes a
// value that could be the secret itself.
func TestSecretFlagsRegister(t *testing.T) {
	var v secretFlags
	cmd := &cobra.Command{Use: "x"}
	v.register(cmd)
	var names []string
	cmd.Flags().VisitAll(func(fl *pflag.Flag) { names = append(names, fl.Name) })
	if strings.Join(names, ",") != "from-file,type,value-stdin" {
		t.Errorf("flags %v", names)
	}
}
