// Command counterhost is a go-plugin 1.0.1 host for counter plugins (the
// protocol of go-plugin's examples/bidirectional), used by the interop tests.
// Every put serves an AddHelper on a brokered id that the plugin calls back.
//
// Usage:
//
//	counterhost OP...   with OP one of: put KEY N | get KEY
//
// One plugin session runs every OP in order; each get prints the count and a
// newline. Exit 0 only if every OP worked and the plugin exited gracefully (no
// SIGKILL); otherwise exit 1 with the error, the tail of the plugin's stderr
// and of go-plugin's log on stderr.
//
// Environment:
//
//	COUNTER_PLUGIN      plugin command (required), run as `sh -c "exec $COUNTER_PLUGIN"`
//	COUNTER_AUTOMTLS=1  enable go-plugin AutoMTLS
//	COUNTER_HOST_LOG=1  also stream go-plugin's hclog output (JSON) to stderr
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"gointerop.example/kv/counter"
)

// gracefulFailMsg is what go-plugin 1.0.1 logs right before SIGKILL.
const gracefulFailMsg = "plugin failed to exit gracefully"

// adder is the host's AddHelper: the arithmetic the plugin calls back for.
type adder struct{}

func (adder) Sum(a, b int64) (int64, error) { return a + b, nil }

// syncBuffer is a goroutine-safe buffer (go-plugin writes from its goroutines).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	tee io.Writer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tee != nil {
		_, _ = s.tee.Write(p)
	}
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func run(c counter.Counter, ops []string) error {
	for len(ops) > 0 {
		switch {
		case ops[0] == "put" && len(ops) >= 3:
			n, err := strconv.ParseInt(ops[2], 10, 64)
			if err != nil {
				return fmt.Errorf("put %s %s: not an integer", ops[1], ops[2])
			}
			if err := c.Put(ops[1], n, adder{}); err != nil {
				return fmt.Errorf("put %s %d: %s", ops[1], n, err)
			}
			ops = ops[3:]
		case ops[0] == "get" && len(ops) >= 2:
			v, err := c.Get(ops[1])
			if err != nil {
				return fmt.Errorf("get %s: %s", ops[1], err)
			}
			fmt.Println(v)
			ops = ops[2:]
		default:
			return fmt.Errorf("usage: counterhost (put KEY N | get KEY)... (at %q)", ops)
		}
	}
	return nil
}

func session(command string, ops []string, stderr, log *syncBuffer) error {
	if !strings.HasPrefix(strings.TrimSpace(command), "exec ") {
		command = "exec " + command // the plugin must be our direct child
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  counter.Handshake,
		Plugins:          plugin.PluginSet{counter.PluginName: &counter.GRPCPlugin{}},
		Cmd:              exec.Command("sh", "-c", command),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         os.Getenv("COUNTER_AUTOMTLS") == "1",
		Stderr:           stderr,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "counterhost", Level: hclog.Trace, Output: log, JSONFormat: true,
		}),
	})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		return fmt.Errorf("client: %s", err)
	}
	raw, err := rpc.Dispense(counter.PluginName)
	if err != nil {
		return fmt.Errorf("dispense: %s", err)
	}
	c, ok := raw.(counter.Counter)
	if !ok {
		return fmt.Errorf("dispensed %T, not counter.Counter", raw)
	}
	return run(c, ops)
}

func main() {
	command := os.Getenv("COUNTER_PLUGIN")
	stderr, log := &syncBuffer{}, &syncBuffer{}
	if os.Getenv("COUNTER_HOST_LOG") == "1" {
		log.tee = os.Stderr
	}
	err := errors.New("COUNTER_PLUGIN is not set (the plugin command, run with sh -c)")
	if command != "" {
		err = session(command, os.Args[1:], stderr, log)
	}
	if err == nil && strings.Contains(log.String(), gracefulFailMsg) {
		err = errors.New(gracefulFailMsg + " (SIGKILL)")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "counterhost: %s\n", err)
		if s := stderr.String(); s != "" {
			fmt.Fprintf(os.Stderr, "--- plugin stderr (tail) ---\n%s\n", tail(s, 30))
		}
		if s := log.String(); s != "" && log.tee == nil {
			fmt.Fprintf(os.Stderr, "--- go-plugin log (tail) ---\n%s\n", tail(s, 30))
		}
		os.Exit(1)
	}
}
