// Command kvhost is a go-plugin 1.0.1 gRPC host for the KV plugin, used by
// the interop tests to drive plugins written with pyvider_rpcplugin_sync.
//
// Usage:
//
//	kvhost put KEY VALUE [put KEY VALUE | get KEY]...   one plugin, ops in order
//	kvhost get KEY                                       prints the value + "\n"
//	kvhost check                                         scenario, JSON line on stdout
//	kvhost threads [CALLS [GOROUTINES]]                  concurrent calls, JSON line
//
// Environment:
//
//	KV_PLUGIN         plugin command (required), run as `sh -c "exec $KV_PLUGIN"`
//	                  so the plugin is the host's direct child, as with a real
//	                  host (pid, exit status and SIGKILL then concern the
//	                  plugin, not a wrapper shell); hence a simple command:
//	                  no `;`/`&&` lists, no leading VAR=value assignments
//	                  (pass variables through kvhost's own environment)
//	KV_COOKIE_KEY, KV_COOKIE_VALUE, KV_VERSIONS   handshake (see package shared)
//	KV_AUTOMTLS=1     enable go-plugin AutoMTLS
//	KV_START_TIMEOUT  go-plugin StartTimeout as a Go duration (default 1m)
//	KV_PORT_RANGE     MIN-MAX: ClientConfig.MinPort/MaxPort, sent to the plugin as
//	                  PLUGIN_MIN_PORT/PLUGIN_MAX_PORT (go-plugin default 10000-25000)
//	KV_HOST_LOG=1     also stream go-plugin's hclog output (JSON) to stderr
//
// check and threads print one JSON object on stdout, also on failure
// ({"ok": false, "stage": ..., "error": ...}); every failure exits 1 with a
// message, the tail of the plugin's stderr and of go-plugin's log on stderr.
// SIGINT/SIGTERM kill the plugin before kvhost exits.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"gointerop.example/kv/shared"
)

const loggerName = "kvhost"

// gracefulFailMsg is what go-plugin 1.0.1 logs (WARN) right before SIGKILL.
const gracefulFailMsg = "plugin failed to exit gracefully"

// tailBuffer is a goroutine-safe writer that keeps the last max bytes and
// optionally tees to another writer.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
	tee io.Writer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	if t.tee != nil {
		_, _ = t.tee.Write(p)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// host wraps one go-plugin client and what it captured.
type host struct {
	cmd       *exec.Cmd
	client    *plugin.Client
	log       *tailBuffer // go-plugin's hclog JSON lines
	stderr    *tailBuffer // raw plugin stderr
	hs        shared.Handshake
	automtls  bool
	killOnce  sync.Once
	killDur   time.Duration
	killStart time.Time
}

var (
	activeMu sync.Mutex
	active   *host
)

func newHost() (*host, error) {
	command := os.Getenv("KV_PLUGIN")
	if command == "" {
		return nil, errors.New("KV_PLUGIN is not set (the plugin command, run with sh -c)")
	}
	hs, err := shared.HostHandshake()
	if err != nil {
		return nil, err
	}
	startTimeout := time.Minute
	if s := os.Getenv("KV_START_TIMEOUT"); s != "" {
		if startTimeout, err = time.ParseDuration(s); err != nil {
			return nil, fmt.Errorf("invalid KV_START_TIMEOUT %q: %s", s, err)
		}
	}
	var minPort, maxPort uint
	if s := os.Getenv("KV_PORT_RANGE"); s != "" {
		if _, err := fmt.Sscanf(s, "%d-%d", &minPort, &maxPort); err != nil || minPort == 0 || minPort > maxPort {
			return nil, fmt.Errorf("invalid KV_PORT_RANGE %q (want MIN-MAX)", s)
		}
	}
	h := &host{
		cmd:      exec.Command("sh", "-c", execCommand(command)),
		log:      &tailBuffer{max: 1 << 20},
		stderr:   &tailBuffer{max: 64 << 10},
		hs:       hs,
		automtls: os.Getenv("KV_AUTOMTLS") == "1",
	}
	if os.Getenv("KV_HOST_LOG") == "1" {
		h.log.tee = os.Stderr
	}
	h.client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  hs.Config,
		VersionedPlugins: hs.VersionedPlugins(nil),
		Cmd:              h.cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         h.automtls,
		StartTimeout:     startTimeout,
		MinPort:          minPort,
		MaxPort:          maxPort,
		Stderr:           h.stderr,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       loggerName,
			Level:      hclog.Trace,
			Output:     h.log,
			JSONFormat: true,
		}),
	})
	activeMu.Lock()
	active = h
	activeMu.Unlock()
	return h, nil
}

// execCommand prefixes "exec " unless already there: Debian's dash does not
// exec the last command of `sh -c` itself, and a SIGKILL from go-plugin would
// then hit the shell and orphan the plugin, whose pipes keep Kill waiting.
func execCommand(command string) string {
	if strings.HasPrefix(strings.TrimSpace(command), "exec ") {
		return command
	}
	return "exec " + command
}

// kill runs Client.Kill once and records its duration.
func (h *host) kill() {
	h.killOnce.Do(func() {
		h.killStart = time.Now()
		h.client.Kill()
		h.killDur = time.Since(h.killStart)
	})
}

// forcedKill reports whether go-plugin (not the plugin) logged that it had
// to SIGKILL the plugin.
func (h *host) forcedKill() bool {
	for _, line := range strings.Split(h.log.String(), "\n") {
		var e map[string]interface{}
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if e["@module"] == loggerName && e["@message"] == gracefulFailMsg {
			return true
		}
	}
	return false
}

// exitInfo describes the plugin process after kill (nil if never started).
func (h *host) exitInfo(r map[string]interface{}) {
	if h.cmd.Process != nil {
		pid := h.cmd.Process.Pid
		r["plugin_pid"] = pid
		r["plugin_alive_after_kill"] = syscall.Kill(pid, 0) == nil
	}
	ps := h.cmd.ProcessState
	if ps == nil {
		r["plugin_exit"] = nil
		return
	}
	r["plugin_exit"] = ps.String()
	r["plugin_exit_code"] = ps.ExitCode() // -1 when killed by a signal
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r["plugin_exit_signal"] = ws.Signal().String()
	}
}

func (h *host) dumpDiagnostics() {
	if s := strings.TrimSpace(h.stderr.String()); s != "" {
		fmt.Fprintf(os.Stderr, "--- plugin stderr (tail) ---\n%s\n", tail(s, 40))
	}
	if s := strings.TrimSpace(h.log.String()); s != "" && os.Getenv("KV_HOST_LOG") != "1" {
		fmt.Fprintf(os.Stderr, "--- go-plugin log (tail) ---\n%s\n", tail(s, 40))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stageError carries the scenario stage that failed.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }

func fail(stage string, err error) error { return &stageError{stage, err} }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// connect performs Start, Client and Dispense, recording timings.
func (h *host) connect(timings map[string]float64, r map[string]interface{}) (plugin.ClientProtocol, shared.KV, error) {
	t := time.Now()
	addr, err := h.client.Start()
	timings["start"] = ms(time.Since(t))
	if err != nil {
		return nil, nil, fail("start", err)
	}
	r["network"] = addr.Network()
	r["address"] = addr.String()
	r["negotiated_version"] = h.client.NegotiatedVersion()
	r["protocol"] = string(h.client.Protocol())

	t = time.Now()
	rpc, err := h.client.Client()
	timings["client"] = ms(time.Since(t))
	if err != nil {
		return nil, nil, fail("client", err)
	}
	t = time.Now()
	raw, err := rpc.Dispense(shared.PluginName)
	timings["dispense"] = ms(time.Since(t))
	if err != nil {
		return nil, nil, fail("dispense", err)
	}
	kv, ok := raw.(shared.KV)
	if !ok {
		return nil, nil, fail("dispense", fmt.Errorf("dispensed %T, not shared.KV", raw))
	}
	return rpc, kv, nil
}

type kvCase struct {
	key   string
	value []byte
}

func checkCases() []kvCase {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	big := make([]byte, 1<<20)
	rand.New(rand.NewSource(42)).Read(big)
	return []kvCase{
		{"hello", []byte("world")},
		{"empty", []byte{}},
		{"binary", binary},
		{"unicode-ключ-🔑", []byte("värde ✓")},
		{"big", big},
		{"hello", []byte("world, overwritten")}, // overwrite: the last Put wins
	}
}

func runCheck(h *host, r map[string]interface{}) error {
	timings := map[string]float64{}
	r["timings_ms"] = timings
	total := time.Now()
	rpc, kv, err := h.connect(timings, r)
	if err != nil {
		return err
	}

	cases := checkCases()
	want := map[string][]byte{}
	t := time.Now()
	for i, c := range cases {
		tc := time.Now()
		if err := kv.Put(c.key, c.value); err != nil {
			return fail("put", fmt.Errorf("Put(%q, %d bytes): %s", c.key, len(c.value), err))
		}
		if i == 0 {
			timings["first_call"] = ms(time.Since(tc))
		}
		want[c.key] = c.value
	}
	timings["puts"] = ms(time.Since(t))

	t = time.Now()
	verified := 0
	for key, value := range want {
		got, err := kv.Get(key)
		if err != nil {
			return fail("get", fmt.Errorf("Get(%q): %s", key, err))
		}
		if !bytes.Equal(got, value) {
			return fail("verify", fmt.Errorf("Get(%q): got %d bytes, want %d bytes (values differ)",
				key, len(got), len(value)))
		}
		verified++
	}
	timings["gets"] = ms(time.Since(t))
	r["keys_verified"] = verified
	r["puts"] = len(cases)

	_, err = kv.Get("no-such-key")
	r["missing_key_code"] = status.Code(err).String()
	if status.Code(err) != codes.NotFound {
		return fail("get-missing", fmt.Errorf("Get of a missing key: want NotFound, got %v", err))
	}

	t = time.Now()
	err = rpc.Ping()
	timings["ping"] = ms(time.Since(t))
	if err != nil {
		return fail("ping", err)
	}
	r["ping"] = "ok"

	h.kill()
	timings["kill"] = ms(h.killDur)
	timings["total"] = ms(time.Since(total))
	return nil
}

func runThreads(h *host, r map[string]interface{}, calls, goroutines int) error {
	timings := map[string]float64{}
	r["timings_ms"] = timings
	_, kv, err := h.connect(timings, r)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	t := time.Now()
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				key := fmt.Sprintf("g%d-%d", g, i)
				value := []byte(fmt.Sprintf("value-%d-%d-%s", g, i, strings.Repeat("x", i%64)))
				if err := kv.Put(key, value); err != nil {
					errs <- fmt.Errorf("goroutine %d: Put(%q): %s", g, key, err)
					return
				}
				got, err := kv.Get(key)
				if err != nil {
					errs <- fmt.Errorf("goroutine %d: Get(%q): %s", g, key, err)
					return
				}
				if !bytes.Equal(got, value) {
					errs <- fmt.Errorf("goroutine %d: Get(%q) = %q, want %q", g, key, got, value)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	elapsed := time.Since(t)
	close(errs)
	if err, ok := <-errs; ok {
		return fail("threads", err)
	}
	n := 2 * calls * goroutines
	timings["calls"] = ms(elapsed)
	r["goroutines"] = goroutines
	r["calls"] = n
	r["calls_per_s"] = float64(n) / elapsed.Seconds()
	h.kill()
	timings["kill"] = ms(h.killDur)
	return nil
}

func runOps(h *host, args []string) error {
	timings := map[string]float64{}
	_, kv, err := h.connect(timings, map[string]interface{}{})
	if err != nil {
		return err
	}
	for len(args) > 0 {
		switch {
		case args[0] == "put" && len(args) >= 3:
			if err := kv.Put(args[1], []byte(args[2])); err != nil {
				return fail("put", fmt.Errorf("Put(%q): %s", args[1], err))
			}
			args = args[3:]
		case args[0] == "get" && len(args) >= 2:
			v, err := kv.Get(args[1])
			if err != nil {
				return fail("get", fmt.Errorf("Get(%q): %s", args[1], err))
			}
			os.Stdout.Write(append(v, '\n'))
			args = args[2:]
		default:
			return fail("usage", fmt.Errorf("bad operation %q", strings.Join(args, " ")))
		}
	}
	h.kill()
	return nil
}

func usage() {
	fmt.Fprint(os.Stderr, "usage: kvhost put KEY VALUE [put KEY VALUE | get KEY]...\n"+
		"       kvhost get KEY\n"+
		"       kvhost check\n"+
		"       kvhost threads [CALLS [GOROUTINES]]\n")
	os.Exit(2)
}

func intArg(args []string, i, def int) int {
	if len(args) <= i {
		return def
	}
	n, err := strconv.Atoi(args[i])
	if err != nil || n <= 0 {
		usage()
	}
	return n
}

func handleSignals() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-ch
		fmt.Fprintf(os.Stderr, "kvhost: %s, killing the plugin\n", sig)
		activeMu.Lock()
		h := active
		activeMu.Unlock()
		if h != nil {
			h.kill()
		}
		os.Exit(128 + int(sig.(syscall.Signal)))
	}()
}

func main() {
	args := os.Args[1:]
	if len(args) == 0 {
		usage()
	}
	mode := args[0]
	if mode != "check" && mode != "threads" && mode != "put" && mode != "get" {
		usage()
	}
	handleSignals()

	r := map[string]interface{}{"mode": mode}
	h, err := newHost()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kvhost: %s\n", err)
		os.Exit(2)
	}
	r["automtls"] = h.automtls
	r["host_versions"] = h.hs.Versions

	switch mode {
	case "check":
		err = runCheck(h, r)
	case "threads":
		err = runThreads(h, r, intArg(args, 1, 100), intArg(args, 2, 8))
	default:
		err = runOps(h, args)
	}
	// Always end the plugin, also after a failure (a no-op after a kill).
	h.kill()
	r["forced_kill"] = h.forcedKill()
	h.exitInfo(r)
	r["ok"] = err == nil
	if err != nil {
		var se *stageError
		if errors.As(err, &se) {
			r["stage"] = se.stage
			err = se.err
		}
		r["error"] = err.Error()
	}
	if mode == "check" || mode == "threads" {
		out, jerr := json.Marshal(r)
		if jerr != nil {
			fmt.Fprintf(os.Stderr, "kvhost: encoding result: %s\n", jerr)
			os.Exit(1)
		}
		fmt.Println(string(out))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kvhost: %s failed at %v: %s\n", mode, r["stage"], err)
		h.dumpDiagnostics()
		os.Exit(1)
	}
}
