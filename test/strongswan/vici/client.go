package vici

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// Client runs vici commands over one connection. Commands are serialised:
// vici has no request ids, so one command at a time per connection (vici
// README, "Commands"). Events are received on separate connections, see
// Subscribe. A Client is safe for concurrent use.
type Client struct {
	path string

	mu   sync.Mutex
	conn net.Conn // nil after an interrupted exchange; redialled on demand
}

// SocketPath turns "unix:///run/x.vici" or "/run/x.vici" into a path.
func SocketPath(uri string) string {
	return strings.TrimPrefix(uri, "unix://")
}

// Dial connects to charon's vici socket (a path or a unix:// URI).
func Dial(ctx context.Context, uri string) (*Client, error) {
	c := &Client{path: SocketPath(uri)}
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.conn = conn
	return c, nil
}

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		return nil, fmt.Errorf("vici: connect %s: %w", c.path, err)
	}
	return conn, nil
}

// Close closes the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn = nil
	return err
}

// exchange runs fn on the connection with ctx's deadline and cancellation
// applied. After a failed exchange the connection is in an unknown state
// and is dropped; the next command dials again.
func (c *Client) exchange(ctx context.Context, fn func(conn net.Conn) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.conn == nil {
		conn, err := c.dial(ctx)
		if err != nil {
			return err
		}
		c.conn = conn
	}
	conn := c.conn
	dl, hasDL := ctx.Deadline()
	if err := conn.SetDeadline(dl); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() {
		conn.SetDeadline(time.Unix(1, 0)) // wakes a blocked read or write
	})
	err := fn(conn)
	stop() // a later SetDeadline undoes a late wake-up
	if err != nil && !isCommandLevel(err) {
		conn.Close()
		c.conn = nil
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		case err != nil && hasDL && !time.Now().Before(dl):
			// the socket deadline fired just before ctx noticed
			return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
		}
	}
	return err
}

// isCommandLevel reports errors after which the connection is still in sync.
func isCommandLevel(err error) bool {
	var ce *CommandError
	return errors.As(err, &ce) || errors.Is(err, ErrUnknownCommand) || errors.Is(err, ErrUnknownEvent)
}

// Call sends one command and returns its response message.
func (c *Client) Call(ctx context.Context, cmd string, req *Message) (*Message, error) {
	return c.Stream(ctx, cmd, "", req, nil)
}

// Stream sends a command that streams its data as events named event
// (list-sas → list-sa, initiate → control-log), calling onEvent for each,
// and returns the final response. With event == "" it is a plain Call.
func (c *Client) Stream(ctx context.Context, cmd, event string, req *Message, onEvent func(*Message)) (*Message, error) {
	if req == nil {
		req = &Message{}
	}
	var resp *Message
	err := c.exchange(ctx, func(conn net.Conn) error {
		if event != "" {
			if err := register(conn, pktEventRegister, event); err != nil {
				return err
			}
		}
		if err := writePacket(conn, packet{typ: pktCmdRequest, name: cmd, msg: req}); err != nil {
			return fmt.Errorf("vici: send %s: %w", cmd, err)
		}
		for resp == nil {
			p, err := readPacket(conn)
			if err != nil {
				return fmt.Errorf("vici: %s: %w", cmd, err)
			}
			switch {
			case p.typ == pktEvent && p.name == event && event != "":
				if onEvent != nil {
					onEvent(p.msg)
				}
			case p.typ == pktCmdResponse:
				resp = p.msg
			case p.typ == pktCmdUnknown:
				return fmt.Errorf("%w %q", ErrUnknownCommand, cmd)
			default:
				return &ProtocolError{Reason: fmt.Sprintf("%v %q while waiting for the %s response", p.typ, p.name, cmd)}
			}
		}
		if event != "" {
			return register(conn, pktEventUnregister, event)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// register sends EVENT_REGISTER or EVENT_UNREGISTER and waits for the
// confirmation, skipping events of a stream still draining.
func register(conn net.Conn, typ packetType, event string) error {
	if err := writePacket(conn, packet{typ: typ, name: event}); err != nil {
		return fmt.Errorf("vici: %v %s: %w", typ, event, err)
	}
	for {
		p, err := readPacket(conn)
		if err != nil {
			return fmt.Errorf("vici: %v %s: %w", typ, event, err)
		}
		switch p.typ {
		case pktEvent:
			continue
		case pktEventConfirm:
			return nil
		case pktEventUnknown:
			return fmt.Errorf("%w %q", ErrUnknownEvent, event)
		default:
			return &ProtocolError{Reason: fmt.Sprintf("%v in answer to %v %s", p.typ, typ, event)}
		}
	}
}

// checkSuccess turns success = no into a *CommandError.
func checkSuccess(cmd string, resp *Message, log []string) error {
	if resp.Str("success") == "yes" {
		return nil
	}
	return &CommandError{Command: cmd, Reason: resp.Str("errmsg"), Log: log}
}

// callOK runs a command whose response is { success, errmsg }.
func (c *Client) callOK(ctx context.Context, cmd string, req *Message) (*Message, error) {
	resp, err := c.Call(ctx, cmd, req)
	if err != nil {
		return nil, err
	}
	return resp, checkSuccess(cmd, resp, nil)
}
