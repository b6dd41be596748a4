package vici

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeCharon answers vici on a unix socket with handle, once per connection.
type fakeCharon struct {
	path   string
	ln     net.Listener
	wg     sync.WaitGroup
	handle func(t *testing.T, c net.Conn)
}

func newFake(t *testing.T, handle func(t *testing.T, c net.Conn)) *fakeCharon {
	t.Helper()
	dir, err := os.MkdirTemp("", "vici")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCharon{path: filepath.Join(dir, "s"), handle: handle}
	f.ln, err = net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := f.ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer c.Close()
				f.handle(t, c)
			}()
		}
	}()
	t.Cleanup(func() {
		f.ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		f.wg.Wait()
		os.RemoveAll(dir)
	})
	return f
}

func send(c net.Conn, p packet) {
	writePacket(c, p)
}

func ok() *Message { return NewMessage().Set("success", "yes") }

// serveCommands answers every command with reply(name, req) and handles
// (un)registration of the streamed events.
func serveCommands(reply func(c net.Conn, name string, req *Message)) func(t *testing.T, c net.Conn) {
	return func(t *testing.T, c net.Conn) {
		for {
			p, err := readPacket(c)
			if err != nil {
				return
			}
			switch p.typ {
			case pktEventRegister, pktEventUnregister:
				if p.name == "bogus" {
					send(c, packet{typ: pktEventUnknown})
					continue
				}
				send(c, packet{typ: pktEventConfirm})
			case pktCmdRequest:
				reply(c, p.name, p.msg)
			}
		}
	}
}

func TestClientCommands(t *testing.T) {
	var mu sync.Mutex
	var got []string
	f := newFake(t, serveCommands(func(c net.Conn, name string, req *Message) {
		mu.Lock()
		got = append(got, name+" "+strings.ReplaceAll(strings.TrimSpace(req.String()), "\n", "; "))
		mu.Unlock()
		switch name {
		case "version":
			send(c, packet{typ: pktCmdResponse, msg: NewMessage().Set("daemon", "charon").Set("version", "5.9.8")})
		case "list-sas":
			sa := NewMessage().Set("uniqueid", "7").Set("state", "ESTABLISHED").Set("local-host", "198.51.100.2").Set("local-port", "4500")
			send(c, packet{typ: pktEvent, name: "list-sa", msg: NewMessage().SetSection("gw", sa)})
			send(c, packet{typ: pktEvent, name: "list-sa", msg: NewMessage().SetSection("gw2", NewMessage().Set("uniqueid", "8"))})
			send(c, packet{typ: pktCmdResponse, msg: NewMessage()})
		case "initiate":
			send(c, packet{typ: pktEvent, name: "control-log", msg: NewMessage().Set("msg", "establishing")})
			send(c, packet{typ: pktEvent, name: "control-log", msg: NewMessage().Set("msg", "no proposal chosen")})
			send(c, packet{typ: pktCmdResponse, msg: NewMessage().Set("success", "no").Set("errmsg", "establishing CHILD_SA 'net' failed")})
		case "rekey":
			send(c, packet{typ: pktCmdResponse, msg: ok().Set("matches", "1")})
		case "load-shared", "load-pool", "load-conn", "terminate":
			send(c, packet{typ: pktCmdResponse, msg: ok()})
		case "unload-pool":
			send(c, packet{typ: pktCmdResponse, msg: NewMessage().Set("success", "no").Set("errmsg", "pool busy")})
		default:
			send(c, packet{typ: pktCmdUnknown})
		}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, "unix://"+f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	v, err := c.Version(ctx)
	if err != nil || v.Version != "5.9.8" || v.Daemon != "charon" {
		t.Fatalf("version %+v, %v", v, err)
	}
	sas, err := c.ListSAs(ctx, "gw")
	if err != nil || len(sas) != 2 || sas[0].UniqueID != 7 || sas[0].State != IKEEstablished ||
		sas[0].Local.String() != "198.51.100.2:4500" || sas[1].Name != "gw2" {
		t.Fatalf("list-sas %+v, %v", sas, err)
	}
	err = c.Initiate(ctx, "net", "gw")
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Command != "initiate" || !strings.Contains(ce.Reason, "failed") || len(ce.Log) != 2 || ce.Log[1] != "no proposal chosen" {
		t.Fatalf("initiate: %#v", err)
	}
	if n, err := c.Rekey(ctx, Rekey{Child: "net", ChildID: 3}); err != nil || n != 1 {
		t.Fatalf("rekey %d, %v", n, err)
	}
	if err := c.LoadShared(ctx, Shared{Data: Secret("s3cret"), Owners: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.LoadPool(ctx, "p", Pool{Addrs: "10.45.0.0/24", DNS: []string{"192.0.2.53"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.UnloadPool(ctx, "p"); !errors.As(err, &ce) || ce.Reason != "pool busy" {
		t.Fatalf("unload-pool: %v", err)
	}
	if _, err := c.Call(ctx, "no-such-command", nil); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("unknown command: %v", err)
	}
	// The connection stays usable after command-level errors.
	if err := c.Terminate(ctx, "gw"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stream(ctx, "list-sas", "bogus", nil, nil); !errors.Is(err, ErrUnknownEvent) {
		t.Fatalf("bogus stream: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"version ",
		"list-sas ike = gw",
		"initiate child = net; ike = gw; timeout = ",
		"rekey child = net; child_id = 3",
		"load-shared type = IKE; data = [redacted]; owners = [a, b]",
		"load-pool p {;   addrs = 10.45.0.0/24;   dns = [192.0.2.53]; }",
		"unload-pool name = p",
		"no-such-command ",
		"terminate ike = gw; timeout = ",
	}
	if len(got) != len(want) {
		t.Fatalf("requests\n%s", strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], strings.TrimSpace(want[i])) {
			t.Errorf("request %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
}

func TestClientTimeoutAndRedial(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	f := newFake(t, func(t *testing.T, c net.Conn) {
		mu.Lock()
		conns++
		mu.Unlock()
		serveCommands(func(c net.Conn, name string, req *Message) {
			if name == "stall" {
				return // never answers
			}
			send(c, packet{typ: pktCmdResponse, msg: NewMessage().Set("version", "x")})
		})(t, c)
	})
	c, err := Dial(context.Background(), f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	start := time.Now()
	_, err = c.Call(ctx, "stall", nil)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("stalled call: %v after %v", err, time.Since(start))
	}
	// Cancellation without a deadline interrupts too.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err = c.Call(ctx, "stall", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	// The broken connection was dropped: the next call dials again.
	if _, err := c.Version(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if conns != 3 {
		t.Fatalf("%d connections, want 3", conns)
	}
}

func TestClientProtocolErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply func(c net.Conn)
		want  string
	}{
		{"confirm instead of response", func(c net.Conn) { send(c, packet{typ: pktEventConfirm}) }, "EVENT_CONFIRM"},
		{"unsolicited event", func(c net.Conn) { send(c, packet{typ: pktEvent, name: "log", msg: NewMessage()}) }, `EVENT "log"`},
		{"garbage", func(c net.Conn) { c.Write([]byte{0, 0, 0, 2, 1, 9}) }, "unknown element type 9"},
		{"oversized", func(c net.Conn) { c.Write([]byte{0, 0x10, 0, 0}) }, "exceeds"},
		{"closed", func(c net.Conn) { c.Close() }, "EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, func(t *testing.T, c net.Conn) {
				if _, err := readPacket(c); err == nil {
					tc.reply(c)
				}
				time.Sleep(50 * time.Millisecond)
			})
			c, err := Dial(context.Background(), f.path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err = c.Call(ctx, "version", nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSubscribe(t *testing.T) {
	release := make(chan struct{})
	f := newFake(t, func(t *testing.T, c net.Conn) {
		for {
			p, err := readPacket(c)
			if err != nil {
				return
			}
			if p.name == "bogus" {
				send(c, packet{typ: pktEventUnknown})
				continue
			}
			send(c, packet{typ: pktEventConfirm})
			if p.name == EventChildUpDown {
				break
			}
		}
		<-release
		send(c, packet{typ: pktEvent, name: EventIKEUpDown, msg: NewMessage().Set("up", "yes").SetSection("gw", NewMessage().Set("state", "ESTABLISHED"))})
		send(c, packet{typ: pktEvent, name: EventChildUpDown, msg: NewMessage().Set("up", "no").SetSection("gw", NewMessage())})
		c.Write([]byte{0, 0, 0, 1, 99}) // a broken packet ends the subscription
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Subscribe(ctx, "bogus"); !errors.Is(err, ErrUnknownEvent) {
		t.Fatalf("bogus: %v", err)
	}
	s, err := c.Subscribe(ctx, EventIKEUpDown, EventChildUpDown)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	close(release)
	ev, err := s.Wait(ctx, func(e Event) bool { return e.Name == EventChildUpDown })
	if err != nil {
		t.Fatal(err)
	}
	if up, _, err := ev.UpDown(); err != nil || up {
		t.Fatalf("child-updown up=%v %v", up, err)
	}
	if _, err := s.Wait(ctx, nil); err == nil || !strings.Contains(err.Error(), "unknown packet type 99") {
		t.Fatalf("after broken packet: %v", err)
	}
	if s.Dropped() != 0 {
		t.Fatalf("dropped %d", s.Dropped())
	}
}
